"""The column-at-a-time parse of bundle batches (importers/columns.py) against the
row-by-row parse (importers/rows.py), which stays the rule: the same rows from a
plain batch, and every other batch left to the rows, which name its errors. And
the COPY text built a column at a time (importers/writing.py) against the same
text built value by value."""

import json

import pytest
from django.db.models import JSONField
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.importers import import_file, jobs
from annotation.importers.columns import _bundle_batch_plain
from annotation.importers.rejection import ImportRejected, _Errors
from annotation.importers.rows import _BadRow, _batch_parse, _context, _Seen
from annotation.importers.writing import _copy_escape, _copy_escape_all, _copy_format
from annotation.models import Candidate, Comparison, Prompt

from ..factories import ProjectFactory

pytestmark = pytest.mark.django_db


def plain_row(i: int, **extra) -> dict:
    return {
        "id": f"q{i}",
        "text": f"Question {i}?",
        "candidates": [{"id": f"q{i}-{k}", "text": f"Answer {k} to {i}."} for k in "abc"],
        "comparisons": "pairs",
        **extra,
    }


def both_parses(project, rows: list[dict], *, options=None, earlier: list[dict] = ()):
    """Parse a batch both ways, each with its own record of ids met (``earlier``
    rows parsed before it): ``(columns' rows or None, its seen, rows' rows, rows' errors, rows' seen)``."""
    ctx = _context(project, "bundle", options or {})
    seen_by_columns, seen_by_rows = _Seen(), _Seen()
    for seen in (seen_by_columns, seen_by_rows):
        _batch_parse(ctx, list(enumerate(earlier, 1)), _Errors(), seen)
    batch = list(enumerate(rows, len(earlier) + 1))
    by_columns = _bundle_batch_plain(ctx, batch, seen_by_columns)
    errors = _Errors()
    by_rows = _batch_parse(ctx, batch, errors, seen_by_rows)
    return by_columns, seen_by_columns, by_rows, errors, seen_by_rows


def test_a_plain_batch_parses_as_it_does_row_by_row(project):
    rows = [
        plain_row(0),
        plain_row(1, split="eval", metadata={"source": "web", "tags": ["a"]}),
        plain_row(2, comparisons="groups"),
        {"id": "q3", "text": "Ünïcode, tab\there, emoji 🙂", "candidates": [{"id": "é", "text": "Oui.\n"}]},
        {"id": "q4", "text": "No candidates at all."},
        {
            "id": "q5",
            "text": "Candidates with their own columns.",
            "candidates": [
                {"id": "q5-a", "text": "A", "metadata": {"len": 1}, "origin": {"model": "m1"}},
                {"text": "B", "id": "q5-b", "origin": {}},
            ],
            "comparisons": "pairs",
        },
        plain_row(6, candidates=[]),
    ]
    by_columns, seen_by_columns, by_rows, errors, seen_by_rows = both_parses(project, rows)
    assert errors.count == 0
    assert by_columns is not None, "a plain batch must take the column path (the import's speed depends on it)"
    assert by_columns == by_rows
    assert seen_by_columns.ids == seen_by_rows.ids
    assert len(by_columns.comparisons) == 3 + 3 + 2 + 0 + 0 + 1 + 0


def test_the_comparisons_option_is_applied_as_row_by_row(project):
    rows = [{k: v for k, v in plain_row(i).items() if k != "comparisons"} for i in range(3)]
    by_columns, _, by_rows, errors, _ = both_parses(project, rows, options={"comparisons": "pairs"})
    assert errors.count == 0
    assert by_columns == by_rows
    assert len(by_columns.comparisons) == 9


# Each a way of being other than plain, some bad (the rows name them), some fine
# but left to the rows (ints as ids, a derived id, a priority...).
NOT_PLAIN = {
    "blank text": plain_row(9, text="  "),
    "empty text": plain_row(9, text=""),
    "text with NUL": plain_row(9, text="a\x00b"),
    "text with a lone surrogate": plain_row(9, text="a\ud800"),
    "text not a string": plain_row(9, text=["a"]),
    "id too long": plain_row(9, id="x" * 256),
    "id blank": plain_row(9, id=" "),
    "id a number": plain_row(9, id=9),
    "id left out (derived)": {k: v for k, v in plain_row(9).items() if k != "id"},
    "id met earlier in the batch": plain_row(9, id="q0"),
    "id met in an earlier batch": plain_row(9, id="e0"),
    "candidate id met earlier": plain_row(9, candidates=[{"id": "q0-a", "text": "x"}]),
    "candidate id met in an earlier batch": plain_row(9, candidates=[{"id": "e0-a", "text": "x"}]),
    "candidate id twice in the row": plain_row(9, candidates=[{"id": "c", "text": "x"}, {"id": "c", "text": "y"}]),
    "candidate id left out": plain_row(9, candidates=[{"text": "x"}]),
    "candidate blank text": plain_row(9, candidates=[{"id": "c", "text": " "}]),
    "candidate text left out": plain_row(9, candidates=[{"id": "c"}]),
    "candidate with a null": plain_row(9, candidates=[{"id": "c", "text": "x", "metadata": None}]),
    "candidate with a MIME type": plain_row(9, candidates=[{"id": "c", "text": "x", "mime_type": "text/markdown"}]),
    "candidate with an unknown key": plain_row(9, candidates=[{"id": "c", "text": "x", "score": 1}]),
    "candidate metadata not an object": plain_row(9, candidates=[{"id": "c", "text": "x", "metadata": []}]),
    "candidate not an object": plain_row(9, candidates=["c"]),
    "candidates not a list": plain_row(9, candidates={"id": "c"}),
    "unknown split": plain_row(9, split="test"),
    "split not a string": plain_row(9, split=["train"]),
    "metadata not an object": plain_row(9, metadata="x"),
    "metadata null": plain_row(9, metadata=None),
    "unknown column": plain_row(9, score=1),
    "context": plain_row(9, context=[{"role": "user", "content": "hi"}]),
    "priority": plain_row(9, priority=3),
    "unknown comparisons mode": plain_row(9, comparisons="triples"),
    "comparisons listed": plain_row(9, comparisons=[["q9-a", "q9-b"]]),
    "comparisons not a list or mode": plain_row(9, comparisons=3),
    "a line that is not JSON": _BadRow("Not valid JSON: Expecting value."),
}


EARLIER = {"id": "e0", "text": "Earlier.", "candidates": [{"id": "e0-a", "text": "x"}]}


@pytest.mark.parametrize("case", NOT_PLAIN)
def test_a_batch_with_any_row_not_plain_is_left_to_the_rows(project, case):
    by_columns, seen_by_columns, *_ = both_parses(
        project, [plain_row(0), NOT_PLAIN[case], plain_row(1)], earlier=[EARLIER]
    )
    assert by_columns is None
    # Nothing recorded: the rows must meet these ids as new, or they would call them repeated.
    assert [set(ids) for ids in seen_by_columns.ids.values()] == [{"e0"}, {"e0-a"}, set()]


def test_pairs_in_a_ranking_project_are_left_to_the_rows(db):
    project = ProjectFactory(schema={"arity": 3})
    by_columns, _, _, errors, _ = both_parses(project, [plain_row(0)])
    assert by_columns is None
    assert errors.count == 1


# Plain batches with any text (the checks must take every plain one), and the same
# with one value swapped for an odd one: whatever the column path takes must be what
# the rows make of it, with no error.
_plain_texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1).filter(
    lambda t: not t.isspace()
)
# JSON objects a database stores: no NUL, no lone surrogate (those are refused, by row, as unstorable).
_storable = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=3)
_objects = st.dictionaries(_storable, st.integers() | _storable, max_size=2)
_odd_values = st.sampled_from(
    [
        *("", " ", "\t\n", "a\x00", "a\ud800", "x" * 256, 7, None, True, [], {}, ["a"], "test", "pairs", "groups"),
        *({"k": "\x00"}, {"\x00": 1}, {"k": ["a\ud800"]}),
    ]
)


@st.composite
def _plain_batches(draw) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(1, 5))):
        row = {"id": f"q{i}", "text": draw(_plain_texts)}
        candidates = [
            {"id": f"q{i}-{k}", "text": draw(_plain_texts)}
            | draw(st.fixed_dictionaries({}, optional={"metadata": _objects, "origin": _objects}))
            for k in range(draw(st.integers(0, 4)))
        ]
        optional = {
            "split": st.sampled_from(["train", "eval"]),
            "metadata": _objects,
            "candidates": st.just(candidates),
        }
        row |= draw(st.fixed_dictionaries({}, optional=optional))
        mode = draw(st.sampled_from(["pairs", "groups", None]))
        if mode is not None:
            row["comparisons"] = mode
        rows.append(row)
    return rows


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_plain_batches())
def test_every_plain_batch_takes_the_column_path_and_parses_as_row_by_row(project, rows):
    by_columns, seen_by_columns, by_rows, errors, seen_by_rows = both_parses(project, rows)
    assert errors.count == 0
    assert by_columns == by_rows
    assert seen_by_columns.ids == seen_by_rows.ids


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_plain_batches(), data=st.data())
def test_a_batch_with_an_odd_value_is_parsed_as_row_by_row_or_left_to_the_rows(project, rows, data):
    row = data.draw(st.sampled_from(rows))
    candidates = row.get("candidates") or []
    target = data.draw(st.sampled_from([row, *candidates]))
    key = data.draw(st.sampled_from(["id", "text", "split", "metadata", "origin", "candidates", "comparisons"]))
    target[key] = data.draw(_odd_values)
    by_columns, seen_by_columns, by_rows, errors, seen_by_rows = both_parses(project, rows)
    if by_columns is not None:
        assert errors.count == 0
        assert by_columns == by_rows
        assert seen_by_columns.ids == seen_by_rows.ids


# --- Through the import: both paths store the same rows and report the same errors ---------------


def stored(project) -> dict:
    prompts = Prompt.objects.filter(project=project).order_by("pk")
    candidates = Candidate.objects.filter(project=project).order_by("pk")
    comparisons = Comparison.objects.filter(project=project).order_by("pk")
    return {
        "prompts": list(prompts.values_list("external_id", "text", "context", "split", "metadata")),
        "candidates": list(candidates.values_list("prompt__external_id", "external_id", "text", "metadata", "origin")),
        "comparisons": [
            (c.prompt.external_id, c.external_id, [Candidate.objects.get(pk=pk).external_id for pk in c.candidate_ids])
            for c in comparisons
        ],
    }


def import_both_ways(tmp_path, monkeypatch, rows: list[dict]):
    """Import the rows into a fresh project through the column path, and into
    another with it turned off: ``(stored or errors) by columns, (...) by rows``, and
    for each batch whether the column path took it."""
    path = tmp_path / "bundle.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    outcomes = []
    taken = []

    def by_columns(ctx, batch, seen):
        rows = _bundle_batch_plain(ctx, batch, seen)
        taken.append(rows is not None)
        return rows

    for plain in (by_columns, lambda ctx, batch, seen: None):
        monkeypatch.setattr(jobs, "_bundle_batch_plain", plain)
        project = ProjectFactory()
        try:
            import_file(project=project, kind="bundle", path=path)
        except ImportRejected as exc:
            outcomes.append(exc.errors)
        else:
            outcomes.append(stored(project))
    return (*outcomes, taken)


def test_a_plain_file_is_stored_the_same_by_either_path(tmp_path, monkeypatch):
    rows = [plain_row(i, metadata={"i": i}) for i in range(5)] + [
        {
            "id": "u",
            "text": "Ünïcode\ttab",
            "candidates": [{"id": "u-a", "text": "\\N"}, {"id": "u-b", "text": "b"}],
            "comparisons": "pairs",
        }
    ]
    by_columns, by_rows, taken = import_both_ways(tmp_path, monkeypatch, rows)
    assert taken == [True]
    assert by_columns == by_rows
    assert len(by_columns["comparisons"]) == 5 * 3 + 1


def test_a_file_with_errors_is_reported_the_same_by_either_path(tmp_path, monkeypatch):
    rows = [plain_row(i) for i in range(4)] + [plain_row(9, text=" "), plain_row(1), plain_row(10, id=" ")]
    by_columns, by_rows, taken = import_both_ways(tmp_path, monkeypatch, rows)
    assert taken == [False]
    assert by_columns == by_rows
    assert {e["line"] for e in by_columns} == {5, 6, 7}


# --- COPY text built a column at a time (importers/writing.py) -----------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.one_of(
        st.lists(_json_values, min_size=1, max_size=6),
        st.lists(st.lists(st.integers(), max_size=4), min_size=1, max_size=6),  # candidate keys
        st.sampled_from([[{}] * 3, [[]] * 3, [{}, []], [[1, 2], [3, True]], [[1, 2], []]]),
    )
)
def test_a_json_column_is_copied_as_json_dumps_of_each_value(values):
    expected = [_copy_escape(json.dumps(v, ensure_ascii=False)) for v in values]
    assert _copy_format(JSONField())(values) == expected


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(st.characters(exclude_characters="\x00")), min_size=1, max_size=6))
def test_a_text_column_is_escaped_for_copy_as_each_text_alone(texts):
    def escaped(text: str) -> str:  # COPY's text format, spelled out
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    assert list(_copy_escape_all(texts)) == [escaped(t) for t in texts]
