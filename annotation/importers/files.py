"""Reading an import file: its rows out of JSON Lines, CSV or Parquet, a batch at a
time, with the header checked against the import's columns and the rows counted
first (for progress). A problem with the file as a whole raises
:class:`_FileUnreadable`; a row that cannot be decoded comes out as a
:class:`~.rows._BadRow` for the parser to report."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from .rejection import ImportRejected, _Errors
from .rows import _BadRow, _Context, _present

logger = logging.getLogger(__name__)

BATCH_ROWS = 2000  # file rows checked and written together (one lookup query per table per batch)


class _FileUnreadable(Exception):
    """The file as a whole is not what it claims to be; one clear message, no rows."""

    def __init__(self, message: str, field: str | None = None, line: int | None = None):
        self.message = message
        self.field = field
        self.line = line  # where reading stopped, when that is a row (a line that is not UTF-8)
        super().__init__(message)


def _rows_count(path: Path, file_format: str) -> int:
    try:
        if file_format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if file_format == "csv":
            with _csv_open(path) as f:
                return max(sum(1 for _ in csv.reader(f)) - 1, 0)
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except Exception as exc:  # the reading pass names the problem precisely
        logger.info("Could not count the rows of %s: %s", path, exc)
        return 0


def _batches(rows: Iterator[tuple[int, dict]], errors: _Errors) -> Iterator[list[tuple[int, dict]]]:
    batch = []
    try:
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                yield batch
                batch = []
    except _FileUnreadable as exc:
        errors.add(exc.line, exc.field, exc.message)
        raise ImportRejected(errors.as_list(), exc.message) from exc
    if batch:
        yield batch


def _rows_read(path: Path, file_format: str, ctx: _Context) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, row)`` with the row's values decoded (JSON columns of CSV parsed);
    a file-level problem raises :class:`_FileUnreadable`."""
    reader = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}[file_format]
    return reader(path, ctx)


def _jsonl_rows(path: Path, ctx: _Context) -> Iterator[tuple[int, dict]]:
    with open(path, "rb") as f:
        first = True
        for line_no, line in enumerate(f, 1):
            if line_no == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            if not line.strip():
                continue
            try:
                row = _json_line(line)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                if first:
                    raise _FileUnreadable(
                        f"This is not a JSON Lines file: line {line_no} is not valid JSON ({exc}). "
                        "Each line must hold one JSON object."
                    ) from exc
                yield line_no, _BadRow(f"Not valid JSON: {exc}.")
                continue
            if first and not isinstance(row, dict):
                raise _FileUnreadable(
                    f"This is not a JSON Lines file: line {line_no} is a JSON {type(row).__name__}, not an object. "
                    "Each line must hold one JSON object (a JSON array is not JSON Lines)."
                )
            first = False
            yield line_no, _present(row) if isinstance(row, dict) else _BadRow("Must be a JSON object.")


# Digits as "0", the rest as " ": a line holds 19 digits in a row (perhaps an integer
# beyond 64 bits, which orjson reads as a float) if its translation holds _LONG_RUN.
# Ten times faster than a regular expression (measured).
_DIGITS_ONLY = bytes(b"0"[0] if chr(i).isdigit() and i < 128 else b" "[0] for i in range(256))
_LONG_RUN = b"0" * 19


def _json_line(line: bytes):
    """One JSON value, read as ``json.loads`` reads it (its reading and its error
    messages are the import's rule), in a quarter of the time: orjson reads the
    line unless it refuses it (lone surrogates such as ``"\\ud800"``, which the row
    checks then name; NaN; bad UTF-8) or it may hold an integer beyond 64 bits
    (orjson makes it a float, ``json`` keeps it whole)."""
    if _LONG_RUN not in line.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    return json.loads(line)


@contextlib.contextmanager
def _csv_open(path: Path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        yield f


def _csv_rows(path: Path, ctx: _Context) -> Iterator[tuple[int, dict]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts; the default is 128 KiB a cell
    try:
        with _csv_open(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise _FileUnreadable("The file is empty: a CSV file needs a header row naming its columns.")
            header = [h.strip() for h in header]
            _header_check(header, ctx)
            width = len(header)
            for line_no, cells in enumerate(reader, 1):
                if not any(cells):
                    continue
                if len(cells) > width:
                    yield line_no, _BadRow(f"Has {len(cells)} cells but the header names {width} columns.")
                    continue
                yield line_no, _csv_decode(dict(zip(header, cells, strict=False)), ctx)
    except UnicodeDecodeError as exc:
        row = _csv_row_not_utf8(path)
        if row is None:
            raise _FileUnreadable(f"This is not a CSV file in UTF-8 text: {exc}.") from exc
        if row == 0:
            raise _FileUnreadable("The header row is not UTF-8 text: save the file as UTF-8 (CSV UTF-8).") from exc
        raise _FileUnreadable("Not UTF-8 text: save the file as UTF-8 (CSV UTF-8).", line=row) from exc
    except csv.Error as exc:
        raise _FileUnreadable(f"This is not a valid CSV file: {exc}.") from exc


def _csv_row_not_utf8(path: Path) -> int | None:
    """The row (numbered as rows are in errors: 1 = the first after the header, 0 = the header) holding the first
    bytes that are not UTF-8; the decoder itself only knows an offset into the chunk it was reading."""
    good = bytearray()
    with open(path, "rb") as f:
        for line in f:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                # Every row before this line was complete (header = row 0), so this line starts the next one.
                text = bytes(good).decode("utf-8-sig")
                return sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) if text else 0
            good += line
    return None


def _csv_decode(cells: dict[str, str], ctx: _Context) -> dict:
    """CSV cells are text: parse the JSON and integer columns; an empty cell is a missing value."""
    row = {}
    for key, value in cells.items():
        if value == "":
            continue
        decoded = _decode_text_cell(key, value, ctx.columns.get(key))
        if isinstance(decoded, _BadRow):
            return decoded
        row[key] = decoded
    return row


def _parquet_rows(path: Path, ctx: _Context) -> Iterator[tuple[int, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _FileUnreadable(f"This is not a Parquet file, or it is truncated: {exc}.") from exc
    _header_check(parquet.schema_arrow.names, ctx)
    line_no = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for row in record_batch.to_pylist():
                line_no += 1
                yield line_no, _parquet_decode(row, ctx)
    except (pa.ArrowException, OSError) as exc:
        raise _FileUnreadable(f"The Parquet file is damaged after row {line_no}: {exc}.") from exc


def _parquet_decode(row: dict, ctx: _Context) -> dict:
    """Parquet values are typed; nested columns may also be JSON strings (as in CSV)."""
    row = _present(row)
    for key, value in row.items():
        if isinstance(value, str):
            decoded = _decode_text_cell(key, value, ctx.columns.get(key))
            if isinstance(decoded, _BadRow):
                return decoded
            row[key] = decoded
    return row


def _decode_text_cell(key: str, value: str, kind: str | None):
    """A cell given as text: JSON and integer columns are parsed, a bundle's
    ``comparisons`` may be a mode name instead of JSON. A bad cell → :class:`_BadRow`."""
    if kind == "json" or (kind == "json_or_mode" and value.strip() not in ("pairs", "groups")):
        try:
            return json.loads(value)
        except ValueError as exc:
            return _BadRow(f"Not valid JSON: {exc}.", field=key)
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            return _BadRow(f"Must be a whole number, not {value!r}.", field=key)
    return value.strip() if kind == "json_or_mode" else value


def _header_check(names: list[str], ctx: _Context) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _FileUnreadable(f"The header names these columns twice: {', '.join(duplicates)}.")
    unknown = [n for n in names if n not in ctx.columns]
    if unknown:
        raise _FileUnreadable(
            f"Unknown column(s) {', '.join(map(repr, unknown))} for a {ctx.kind} import; "
            f"the columns are: {', '.join(ctx.columns)}.",
            field=unknown[0],
        )
    missing = [n for n in ctx.required if n not in names]
    if missing:
        raise _FileUnreadable(f"Missing required column(s): {', '.join(map(repr, missing))}.", field=missing[0])
