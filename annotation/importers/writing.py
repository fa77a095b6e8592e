"""Writing the validated plans, inside the import's one transaction: primary keys
drawn first, then ``COPY`` on Postgres or one ``executemany`` elsewhere; and
``ANALYZE`` after a large import."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable

from django.db import connection, models
from django.db.models import JSONField
from django.utils import timezone

from ..comparisons import GOLD_WANTED
from ..models import Candidate, CandidateSource, Comparison, Prompt
from .plan import _gold_answer, _Plan
from .rows import _Context


def _write(ctx: _Context, plans, rows_total: int, progress) -> dict:
    counts = _counts_empty(ctx)
    done = 0
    while True:
        try:
            batch_size, plan = pickle.load(plans)  # noqa: S301 - written by _validate just before
        except EOFError:
            break
        _plan_write(ctx, plan)
        _counts_add(counts, plan)
        done += batch_size
        progress("writing", done, rows_total)
    return counts


def _counts_empty(ctx: _Context) -> dict:
    return {name: {"created": 0, "unchanged": 0} for name in _COUNTED[ctx.kind]}


def _counts_add(counts: dict, plan: _Plan) -> None:
    for name in counts:
        counts[name]["created"] += len(getattr(plan, f"new_{name}"))
        counts[name]["unchanged"] += plan.unchanged[name]


_COUNTED = {
    "prompts": ("prompts",),
    "candidates": ("candidates",),
    "comparisons": ("comparisons",),
    "bundle": ("prompts", "candidates", "comparisons"),
}


def _analyze() -> None:
    if connection.vendor != "postgresql":
        return
    tables = [m._meta.db_table for m in (Prompt, Candidate, Comparison)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(tables))


def _plan_write(ctx: _Context, plan: _Plan) -> None:
    """Insert a batch's new rows: prompts, then candidates (they need their prompt's
    key), then comparisons (their candidates' keys, checked by ``plan`` to be the
    prompt's own, go in ``candidate_ids``)."""
    common = {"project_id": ctx.project_id, "created_at": timezone.now()}
    prompt_pks = plan.prompt_pks
    new_pks = _insert(Prompt, ("external_id", "text", "context", "metadata", "split"), plan.new_prompts, common)
    prompt_pks.update(zip((p[0] for p in plan.new_prompts), new_pks, strict=True))

    candidate_pks = plan.candidate_pks
    new_pks = _insert(
        Candidate,
        ("prompt_id", "external_id", "text", "mime_type", "origin", "metadata"),
        [(prompt_pks[c[0]], *c[1:]) for c in plan.new_candidates],
        {**common, "source": CandidateSource.IMPORTED.value},
    )
    candidate_pks.update(zip((c[1] for c in plan.new_candidates), new_pks, strict=True))

    comparisons = []
    for prompt_external_id, external_id, candidate_external_ids, priority, wanted, gold in plan.new_comparisons:
        is_gold, gold_answer = _gold_answer(gold, candidate_pks)
        wanted = GOLD_WANTED if is_gold else (wanted or ctx.overlap)
        pks = [candidate_pks[ext] for ext in candidate_external_ids]
        comparisons.append((prompt_pks[prompt_external_id], external_id, pks, priority, wanted, is_gold, gold_answer))
    _insert(
        Comparison,
        ("prompt_id", "external_id", "candidate_ids", "priority", "wanted", "is_gold", "gold_answer"),
        comparisons,
        common,
    )


def _insert(model, names: tuple[str, ...], rows: list[tuple], constants: dict | None = None) -> list[int]:
    """Insert rows given as tuples of field values (by attribute name), plus
    ``constants`` for every row; returns their primary keys, in order. Fields
    neither named nor constant take their model default.

    The keys are drawn before inserting and ascend in the file's order (the queue
    serves equal priorities by id). Raw inserts, not ``bulk_create``: building a
    model instance per row cost more than the database's work (measured).
    """
    if not rows:
        return []
    meta = model._meta
    constants = {**_defaults(model, names, constants or {}), **(constants or {})}
    fields = [meta.get_field(name) for name in names]
    constant_fields = [meta.get_field(name) for name in constants]
    columns = [f.column for f in fields] + [f.column for f in constant_fields]
    insert = _insert_copy if connection.vendor == "postgresql" else _insert_many
    with connection.cursor() as cursor:
        pks = _keys_take(cursor, model, len(rows))
        columns.insert(0, meta.pk.column)
        fields.insert(0, meta.pk)
        rows = [(pk, *row) for pk, row in zip(pks, rows, strict=True)]
        insert(cursor, meta.db_table, columns, fields, rows, constant_fields, list(constants.values()))
    return pks


def _defaults(model, names: tuple[str, ...], constants: dict) -> dict:
    now = timezone.now()
    return {
        f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in model._meta.concrete_fields
        if not f.primary_key and f.attname not in names and f.attname not in constants
    }


def _keys_take(cursor, model, count: int) -> list[int]:
    """``count`` new primary keys for the model's table, ascending.

    Postgres: drawn from the table's sequence, so concurrent inserts elsewhere are
    safe; usually contiguous, then they come back as one small row. SQLite: the
    write transaction holds the database's only write lock (``BEGIN IMMEDIATE``),
    so the keys after the highest ever used are ours.
    """
    table, column = model._meta.db_table, model._meta.pk.column
    if connection.vendor == "postgresql":
        # The sequence's name is looked up once: as an argument of nextval() the
        # lookup would run per key (10x the time, measured).
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
        (sequence,) = cursor.fetchone()
        cursor.execute(
            """
            SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) END
            FROM (SELECT nextval(%s::regclass) AS v FROM generate_series(1, %s)) drawn
            """,
            [sequence, count],
        )
        first, last, scattered = cursor.fetchone()
        return list(range(first, last + 1)) if scattered is None else scattered
    cursor.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
        f"coalesce((SELECT max({column}) FROM {table}), 0))",
        [table],
    )
    first = cursor.fetchone()[0] + 1
    return list(range(first, first + count))


def _insert_many(cursor, table, columns, fields, rows, constant_fields, constant_values) -> None:
    """SQLite (and any other database): one ``executemany`` of plain values."""
    constant_values = [f.get_db_prep_save(v, connection) for f, v in zip(constant_fields, constant_values, strict=True)]
    json_at = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]
    if json_at:
        rows = [list(row) for row in rows]
        for row in rows:
            for i in json_at:
                if row[i] is not None:
                    row[i] = json.dumps(row[i], ensure_ascii=False)
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) VALUES ({placeholders})"
    cursor.executemany(sql, [(*row, *constant_values) for row in rows])


def _insert_copy(cursor, table, columns, fields, rows, constant_fields, constant_values) -> None:
    """Postgres: one ``COPY``. Its text is built a column at a time: psycopg's
    ``write_row`` and ``json.dumps`` per value cost 5 µs a row, this 1 µs
    (measured, 200k rows)."""
    suffix = "".join(
        "\t" + _copy_format(f)([value])[0] for f, value in zip(constant_fields, constant_values, strict=True)
    )
    text_columns = [_copy_format(f)(column) for f, column in zip(fields, zip(*rows, strict=True), strict=True)]
    sql = f"COPY {table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) FROM STDIN"
    with cursor.copy(sql) as copy:
        copy.write("".join([line + suffix + "\n" for line in map("\t".join, zip(*text_columns, strict=True))]))


# COPY's text format: tab-separated, \N for null, backslash escapes in text.
def _copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_escape_all(texts) -> list[str]:
    """``_copy_escape`` of each text, done on the texts joined by NUL (which no
    stored text holds: rows.py refuses it): four passes over one string instead of
    four calls per value."""
    return _copy_escape("\x00".join(texts)).split("\x00")


def _copy_json(value) -> str:
    if value == {}:
        return "{}"
    if type(value) is list and all(type(v) is int for v in value):  # candidate keys: the common case
        return f"[{', '.join(map(str, value))}]"
    return _copy_escape(json.dumps(value, ensure_ascii=False))


def _copy_format(model_field) -> Callable[[tuple], list[str]]:
    """A function turning a column of values into COPY text, one string per value."""
    if isinstance(model_field, JSONField):
        convert = _copy_json
    elif isinstance(model_field, models.BooleanField):
        convert = {True: "t", False: "f"}.__getitem__
    elif isinstance(model_field, (models.CharField, models.TextField, models.FileField)):
        convert = _copy_escape
    else:  # integers, keys, timestamps: str() is COPY's text form
        convert = str

    def column(values: tuple) -> list[str]:
        if None in values:
            return ["\\N" if v is None else convert(v) for v in values]
        if convert is _copy_escape:
            return _copy_escape_all(values)
        return list(map(convert, values))

    return column
