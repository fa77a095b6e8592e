"""The export encoders, held to their plain definitions on awkward rows.

The CSV encoder builds lines a column at a time and the Arrow encoder converts a column at a time; JSON Lines
copies each line out as it goes; a batch is encoded in parts and joined. Each must give what the simple way
gives — ``csv.writer`` over the cells, ``orjson.dumps`` per row, ``RecordBatch.from_pylist`` — for any values:
missing ones, quotes, commas, line breaks, NUL, non-ASCII text, empty and nested lists, shared objects.
"""

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.exporters.formats import WRITERS, _CsvRows, _jsonl, _record_batch_encoder
from annotation.exporters.shapes import ShapeOptions, _isoformat, schema_for

# A schema with one column of each kind the shapes use.
SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("number", pa.int64()),
        ("real", pa.float64()),
        ("flag", pa.bool_()),
        ("names", pa.list_(pa.string())),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("other", pa.string()),
    ]
)

AWKWARD = ["", ",", '"', '""', "a,b", 'say "hi"', "line\nbreak", "cr\rlf\r\n", "\x00", "é ü 漢字 🙂", " a", "x\u2028y"]
texts = st.one_of(st.none(), st.sampled_from(AWKWARD), st.text(max_size=30))
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": texts}))
rows = st.lists(
    st.fixed_dictionaries(
        {
            "text": texts,
            "number": st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
            "real": st.one_of(st.none(), st.floats(allow_nan=False)),
            "flag": st.one_of(st.none(), st.booleans()),
            "names": st.one_of(st.none(), st.lists(texts, max_size=4)),
            "messages": st.one_of(st.none(), messages),
            "other": texts,
        }
    ),
    max_size=12,
)


def csv_reference(schema: pa.Schema, batch: list[dict]) -> bytes:
    """The plain definition: lists and objects as JSON text, booleans as true/false, then ``csv.writer``."""
    nested = {f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_struct(f.type)}
    flags = {f.name for f in schema if pa.types.is_boolean(f.type)}
    lines = []
    for row in batch:
        cells = []
        for name in schema.names:
            value = row[name]
            if value is not None and name in nested:
                value = orjson.dumps(value).decode()
            elif value is not None and name in flags:
                value = "true" if value else "false"
            cells.append(value)
        lines.append(cells)
    text = io.StringIO(newline="")
    csv.writer(text).writerows(lines)
    return text.getvalue().encode()


def shared_nested(batch: list[dict]) -> list[dict]:
    """Neighbouring rows share one list object, as a comparison's judgments share their candidates."""
    for previous, row in itertools.pairwise(batch):
        if row["number"] is not None and row["number"] % 2:
            row["messages"] = previous["messages"]
    return batch


@settings(max_examples=400, deadline=None)
@given(batch=rows.map(shared_nested))
def test_csv_lines_are_what_csv_writer_writes(batch):
    assert _CsvRows(SCHEMA)(batch) == csv_reference(SCHEMA, batch)


def test_csv_awkward_cells_one_by_one():
    for value in [*AWKWARD, None]:
        row = {"text": value, "number": None, "real": float("inf"), "flag": False, "names": [], "messages": None}
        row["other"] = value
        assert _CsvRows(SCHEMA)([row]) == csv_reference(SCHEMA, [row])
        (read,) = csv.reader(io.StringIO(_CsvRows(SCHEMA)([row]).decode(), newline=""))
        assert read[0] == (value or "")


def test_csv_a_column_of_plain_text_with_one_value_to_quote():
    batch = [{name: None for name in SCHEMA.names} | {"text": f"id-{i}", "other": "x"} for i in range(50)]
    batch[37]["text"] = 'id "37", quoted'
    assert _CsvRows(SCHEMA)(batch) == csv_reference(SCHEMA, batch)


def test_csv_a_single_column_row_with_an_empty_cell_is_quoted_as_csv_writer_does():
    schema = pa.schema([("text", pa.string())])
    batch = [{"text": ""}, {"text": None}, {"text": "a"}]
    assert _CsvRows(schema)(batch) == csv_reference(schema, batch)


@settings(max_examples=200, deadline=None)
@given(batch=rows)
def test_jsonl_is_one_orjson_line_per_row(batch):
    assert _jsonl(batch) == b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in batch)


@settings(max_examples=200, deadline=None)
@given(batch=rows.map(shared_nested))
def test_record_batches_are_from_pylist(batch):
    assert _record_batch_encoder(SCHEMA)(batch).equals(pa.RecordBatch.from_pylist(batch, schema=SCHEMA))


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet", "hf"])
@pytest.mark.parametrize("shape", ["judgments", "pairs"])
def test_a_batch_encoded_in_parts_and_combined_is_the_batch_encoded_at_once(shape, file_format):
    schema = schema_for(shape, ShapeOptions())
    names = schema.names
    batch = [{name: None for name in names} for _ in range(7)]
    for i, row in enumerate(batch):
        row["judgment_id"], row["prompt"], row["split"] = i, f'prompt {i}, "quoted"\n', "train"
    writer = WRITERS[file_format]
    encode = writer.encoder(schema)
    whole, parts = encode(batch), writer.combine([encode(batch[:3]), encode(batch[3:4]), encode(batch[4:])])
    assert parts.equals(whole) if writer.arrow else parts == whole


@settings(max_examples=2000, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_isoformat_of_a_utc_moment(moment):
    assert _isoformat(moment.replace(tzinfo=UTC)) == moment.replace(tzinfo=UTC).isoformat()


def test_isoformat_elsewhere_and_without_a_zone():
    moment = datetime(2026, 3, 1, 12, 0, 0, 5)
    for zone in (timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3)), None):
        assert _isoformat(moment.replace(tzinfo=zone)) == moment.replace(tzinfo=zone).isoformat()
