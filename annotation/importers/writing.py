"""Writing the validated plans, inside the import's one transaction: primary keys
drawn first, then ``COPY`` on Postgres or one ``executemany`` elsewhere."""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from django.db import connection, models
from django.db.models import JSONField
from django.utils import timezone

from ..comparisons import GOLD_WANTED
from ..models import Candidate, CandidateSource, Comparison, Prompt
from ..queue import serve_order
from .plan import _gold_answer, _Plan
from .rows import _Context


def _plans_read(plans) -> Iterator[tuple[int, _Plan]]:
    """The ``(batch size, plan)`` pairs of a plans file, from where it stands."""
    while True:
        try:
            yield pickle.load(plans)  # noqa: S301 - written by _validate just before
        except EOFError:
            return


def _write(ctx: _Context, plans, rows_total: int, progress) -> dict:
    counts = _counts_empty(ctx)
    done = 0
    for batch_size, plan in _plans_read(plans):
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


def _plan_write(ctx: _Context, plan: _Plan) -> None:
    """Insert a batch's new rows through this thread's connection: keys drawn, then written."""
    _batch_send(_batch_build(ctx, plan, _KeyDrawer(connection)))


def _media_store(ctx: _Context, plan: _Plan) -> None:
    """Store the files of a batch's new candidates (annotation.media, by content hash), before their rows are
    written. The caller discards what this stored if the import then fails (zipped._ZipMedia.discard)."""
    if ctx.media is None:
        return
    for row in plan.new_candidates:
        if row[9] is not None:
            ctx.media.store(*row[9])


@dataclass(slots=True)
class _Insert:
    """One table's new rows of a batch, ready to send: the text of a ``COPY``
    (Postgres), or rows of database values for one ``executemany`` (others)."""

    table: str
    columns: list[str]
    copy_text: bytes | None = None
    rows: list[tuple] | None = None


def _batch_build(ctx: _Context, plan: _Plan, keys: _KeyDrawer) -> list[_Insert]:
    """A batch's new rows as inserts, keys drawn: prompts, then candidates (they
    need their prompt's key), then comparisons (their candidates' keys, checked by
    ``plan`` to be the prompt's own, go in ``candidate_ids``). Nothing is written
    here, so the overlapped import builds a batch while the last one is written."""
    common = {"project_id": ctx.project_id, "created_at": timezone.now()}
    new = {Prompt: plan.new_prompts, Candidate: plan.new_candidates, Comparison: plan.new_comparisons}
    keys.draw({model: len(rows) for model, rows in new.items()})
    # Built a column at a time (the plan's rows transposed): one C-level pass per
    # column, as COPY's text is built, instead of a tuple per row.
    prompt_pks = plan.prompt_pks
    prompt_columns = _transposed(plan.new_prompts, 5)
    prompts, new_pks = _insert_build(
        Prompt, ("external_id", "text", "context", "metadata", "split"), prompt_columns, common, keys
    )
    prompt_pks.update(zip(prompt_columns[0], new_pks, strict=True))

    candidate_pks = plan.candidate_pks
    prompt_external_ids, *candidate_columns, _media_files = _transposed(plan.new_candidates, 10)
    candidates, new_pks = _insert_build(
        Candidate,
        ("prompt_id", "external_id", "text", "mime_type", "origin", "metadata", "media", "media_width", "media_height"),
        [list(map(prompt_pks.__getitem__, prompt_external_ids)), *candidate_columns],
        {**common, "source": CandidateSource.IMPORTED.value},
        keys,
    )
    candidate_pks.update(zip(candidate_columns[0], new_pks, strict=True))

    prompt_external_ids, external_ids, candidate_external_ids, priorities, wanted, golds = _transposed(
        plan.new_comparisons, 6
    )
    gold_answers = [_gold_answer(gold, candidate_pks) if gold is not None else (False, None) for gold in golds]
    is_gold = [g[0] for g in gold_answers]
    comparison_prompt_pks = list(map(prompt_pks.__getitem__, prompt_external_ids))
    together = ctx.serve_prompt_pairs_together
    comparisons, _ = _insert_build(
        Comparison,
        ("prompt_id", "external_id", "candidate_ids", "priority", "wanted", "is_gold", "gold_answer", "serve_order"),
        [
            comparison_prompt_pks,
            external_ids,
            [list(map(candidate_pks.__getitem__, exts)) for exts in candidate_external_ids],
            priorities,
            [GOLD_WANTED if gold else (w or ctx.overlap) for gold, w in zip(is_gold, wanted, strict=True)],
            is_gold,
            [g[1] for g in gold_answers],
            [
                serve_order(together=together, prompt_id=prompt_pk, external_id=external_id)
                for prompt_pk, external_id in zip(comparison_prompt_pks, external_ids, strict=True)
            ],
        ],
        common,
        keys,
    )
    return [insert for insert in (prompts, candidates, comparisons) if insert is not None]


def _batch_send(inserts: list[_Insert]) -> None:
    """Write built inserts, in order, through this thread's connection."""
    with connection.cursor() as cursor:
        for insert in inserts:
            columns = ", ".join(connection.ops.quote_name(c) for c in insert.columns)
            if insert.copy_text is not None:
                with cursor.copy(f"COPY {insert.table} ({columns}) FROM STDIN") as copy:
                    copy.write(insert.copy_text)
            else:
                placeholders = ", ".join(["%s"] * len(insert.columns))
                cursor.executemany(f"INSERT INTO {insert.table} ({columns}) VALUES ({placeholders})", insert.rows)


def _transposed(rows: list[tuple], width: int) -> list[list]:
    """Rows of ``width`` values as ``width`` columns (empty ones when there are no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _insert_build(
    model, names: tuple[str, ...], columns: list[Sequence], constants: dict, keys: _KeyDrawer
) -> tuple[_Insert | None, list[int]]:
    """Rows given as columns of field values (one per attribute name), plus
    ``constants`` for every row, as an :class:`_Insert` with new primary keys; and
    those keys, in order. Fields neither named nor constant take their model default.

    The keys ascend in the file's order (the queue serves equal priorities by serve_order, then id).
    Raw inserts, not ``bulk_create``: building a model instance per row cost more
    than the database's work (measured).
    """
    count = len(columns[0])
    if not count:
        return None, []
    meta = model._meta
    constants = {**_defaults(model, names, constants), **constants}
    fields = [meta.pk, *(meta.get_field(name) for name in names)]
    constant_fields = [meta.get_field(name) for name in constants]
    column_names = [f.column for f in fields] + [f.column for f in constant_fields]
    pks = keys(model, count)
    value_columns = [pks, *columns]
    build = _copy_text if keys.vendor == "postgresql" else _rows_values
    insert = _Insert(
        meta.db_table, column_names, **build(fields, value_columns, constant_fields, list(constants.values()))
    )
    return insert, pks


def _defaults(model, names: tuple[str, ...], constants: dict) -> dict:
    now = timezone.now()
    return {
        f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in model._meta.concrete_fields
        if not f.primary_key and f.attname not in names and f.attname not in constants
    }


class _KeyDrawer:
    """Draws new primary keys, ascending, through a given connection: ``keys(model, count)``.

    Postgres: from the table's sequence, so concurrent inserts elsewhere are safe;
    usually contiguous, then they come back as one small row. A sequence stands
    outside transactions, so the overlapped import draws through a second
    connection while its own is busy writing (a rolled-back import leaves a gap in
    the ids, as any rollback does): ``busy`` says when, and the second connection
    is opened only then (never for a file of one batch). SQLite: the write
    transaction holds the database's only write lock (``BEGIN IMMEDIATE``), so the
    keys after the highest ever used are ours; they must be drawn through the
    importing connection.
    """

    def __init__(self, db_connection, *, side=None, busy: Callable[[], bool] = lambda: True):
        self.connection = db_connection
        self.side, self.busy = side, busy
        self.vendor = db_connection.vendor
        self.sequences: dict[str, str] = {}
        self.drawn: dict[str, list[int]] = {}

    def draw(self, counts: dict) -> None:
        """Postgres: draw the keys of several tables (``{model: count}``) in one
        round trip; the next call for each model returns them."""
        counts = {m: n for m, n in counts.items() if n}
        if self.vendor != "postgresql" or not counts:
            return
        tables = [(m._meta.db_table, m._meta.pk.column) for m in counts]
        missing = [t for t in tables if t[0] not in self.sequences]
        through = self.side if self.side is not None and self.busy() else self.connection
        with through.cursor() as cursor:
            if missing:
                # Looked up once: as an argument of nextval() the lookup would run per key (10x the time, measured).
                cursor.execute(
                    " UNION ALL ".join(["SELECT %s, pg_get_serial_sequence(%s, %s)"] * len(missing)),
                    [v for table, column in missing for v in (table, table, column)],
                )
                self.sequences.update(cursor.fetchall())
            # Usually contiguous: then each table's keys come back as one small row.
            draw = """
                SELECT %s, min(v), max(v),
                       CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) END
                FROM (SELECT nextval(%s::regclass) AS v FROM generate_series(1, %s)) drawn
            """
            params = [(table, self.sequences[table], n) for (table, _), n in zip(tables, counts.values(), strict=True)]
            cursor.execute(" UNION ALL ".join([draw] * len(tables)), [v for p in params for v in p])
            for table, first, last, scattered in cursor.fetchall():
                self.drawn[table] = list(range(first, last + 1)) if scattered is None else scattered

    def __call__(self, model, count: int) -> list[int]:
        table, column = model._meta.db_table, model._meta.pk.column
        if self.vendor == "postgresql":
            if len(self.drawn.get(table, ())) != count:
                self.draw({model: count})
            return self.drawn.pop(table)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
                f"coalesce((SELECT max({column}) FROM {table}), 0))",
                [table],
            )
            first = cursor.fetchone()[0] + 1
        return list(range(first, first + count))


def _rows_values(fields, value_columns, constant_fields, constant_values) -> dict:
    """SQLite (and any other database): plain values for one ``executemany``."""
    rows = list(zip(*value_columns, strict=True))
    constant_values = [f.get_db_prep_save(v, connection) for f, v in zip(constant_fields, constant_values, strict=True)]
    json_at = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]
    if json_at:
        rows = [list(row) for row in rows]
        for row in rows:
            for i in json_at:
                if row[i] is not None:
                    row[i] = json.dumps(row[i], ensure_ascii=False)
    return {"rows": [(*row, *constant_values) for row in rows]}


def _copy_text(fields, value_columns, constant_fields, constant_values) -> dict:
    """Postgres: the text of one ``COPY``, built a column at a time: psycopg's
    ``write_row`` and ``json.dumps`` per value cost 5 µs a row, this 1 µs
    (measured, 200k rows)."""
    end = (
        "".join("\t" + _copy_format(f)([value])[0] for f, value in zip(constant_fields, constant_values, strict=True))
        + "\n"
    )  # the constant columns end every line
    text_columns = [_copy_format(f)(column) for f, column in zip(fields, value_columns, strict=True)]
    text = end.join(map("\t".join, zip(*text_columns, strict=True))) + end
    return {"copy_text": text.encode()}


# COPY's text format: tab-separated, \N for null, backslash escapes in text.
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))  # the backslash first


def _copy_escape(text: str) -> str:
    for char, escaped in _COPY_ESCAPES:
        # Replaced only where it occurs: "in" finds a character with memchr, but
        # replace() counts a one-character pattern a character at a time, 35x
        # slower over a column of texts without one (measured: 26 against 970 ns a text).
        if char in text:
            text = text.replace(char, escaped)
    return text


def _copy_escape_all(texts: Sequence[str]) -> Sequence[str]:
    """``_copy_escape`` of each text, done on the texts joined by NUL (which no
    stored text holds: rows.py refuses it): four passes over one string instead of
    four calls per value. A column with nothing to escape (most of them: ids,
    one-line texts) comes back as it is, without splitting the joined text again."""
    joined = "\x00".join(texts)
    escaped = _copy_escape(joined)
    return texts if escaped == joined else escaped.split("\x00")


def _copy_json(value) -> str:
    return _copy_escape(json.dumps(value, ensure_ascii=False))


def _copy_json_column(values: Sequence) -> list[str] | None:
    """The COPY text of a JSON column in one step for its two common shapes, else
    None: every value the same empty object or list (metadata, origin, context),
    or every value a list of integers (candidate keys), whose ``repr`` is its JSON
    text (``[1, 2]``)."""
    first = values[0]
    if type(first) in (dict, list) and not first and values.count(first) == len(values):
        return [json.dumps(first)] * len(values)
    if type(first) is list and all(type(v) is list for v in values):
        if set(map(type, itertools.chain.from_iterable(values))) == {int}:
            return list(map(repr, values))
    return None


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
    nullable = model_field.null

    def column(values: Sequence) -> list[str]:
        # (Only for a nullable field: "None in values" compares each value, dicts too.)
        if nullable and None in values:
            return ["\\N" if v is None else convert(v) for v in values]
        if convert is _copy_escape:
            return _copy_escape_all(values)
        if convert is _copy_json:
            texts = _copy_json_column(values)
            if texts is not None:
                return texts
        return list(map(convert, values))

    return column
