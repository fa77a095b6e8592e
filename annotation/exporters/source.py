"""The judgments of an export, read a chunk at a time and handed out one comparison at a time.

Memory stays flat whatever the project's size: one server-side cursor (a named cursor on Postgres) walks the
judgments in (comparison, annotator) order — the order of the unique index — reading their own columns only,
filtered on them (time, annotators). For each chunk of rows one query fetches their comparisons with their
prompts, filtered on them (rounds, split, gold: a judgment whose comparison is not kept is dropped), one the
candidates they show and one the spans they mark; usernames are fetched once per annotator. So a comparison's
and its prompt's columns travel and are decoded once, not once per judgment. A comparison's judgments are
contiguous in that order, so they are grouped (for agreement) without holding more than one chunk and one
comparison. Nothing but usernames is kept across chunks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import orjson
from django.contrib.auth import get_user_model
from django.db import connection

from preference.expansion import PairVotes, ordered_pairs

from ..models import Project
from .filters import ExportFilter

CHUNK_ROWS = 5000
"""Judgments per fetch from the server-side cursor (and per IN-list of the candidate and span lookups)."""


@dataclass(slots=True)
class CandidateRow:
    id: int
    external_id: str
    text: str
    media: str
    mime_type: str
    source: str
    origin_json: str
    origin: dict = field(default_factory=dict)
    exported: dict | None = None  # its entry in a judgments row, built once per chunk (see shapes)


@dataclass(slots=True)
class JudgmentRow:
    id: int
    comparison_id: int
    comparison_external_id: str
    candidate_ids: list[int]
    is_gold: bool
    gold_answer: dict | None
    comparison_origin: dict
    prompt_id: int
    prompt_external_id: str
    prompt_text: str
    prompt_context: list
    split: str
    prompt_metadata: dict
    annotator: str
    winner_id: int | None
    tie: bool
    ranking: list | None
    strength: int | None
    ratings: dict
    rationale: str
    shown_order: list
    time_spent_ms: int | None
    created_at: datetime
    candidates: dict[int, CandidateRow] = field(default_factory=dict)
    spans: list[dict] = field(default_factory=list)
    unit_pairs: list | None = None  # pairs() at margin scale 1, kept: the votes and the pairs shape both need it

    def pairs(self, *, margin_scale: float = 1.0) -> list[tuple[int, int, float, float]]:
        if margin_scale == 1.0:
            if self.unit_pairs is None:
                self.unit_pairs = self._expand(1.0)
            return self.unit_pairs
        return self._expand(margin_scale)

    def _expand(self, margin_scale: float) -> list[tuple[int, int, float, float]]:
        return ordered_pairs(
            self.candidate_ids,
            winner=self.winner_id,
            tie=self.tie,
            ranking=self.ranking,
            strength=self.strength,
            margin_scale=margin_scale,
        )


@dataclass(slots=True)
class ComparisonGroup:
    """The exported judgments of one comparison; their pair votes are tallied when first asked for."""

    judgments: list[JudgmentRow]
    _votes: PairVotes | None = None

    @property
    def votes(self) -> PairVotes:
        if self._votes is None:
            self._votes = PairVotes(j.pairs() for j in self.judgments)
        return self._votes

    @property
    def agreement(self) -> float | None:
        # A lone judgment votes once on each pair, and agreement needs a pair voted twice: no tally to make.
        if len(self.judgments) < 2:
            return None
        return self.votes.comparison_agreement()


_JUDGMENT_COLUMNS = (
    "pk",
    "comparison_id",
    "annotator_id",
    "winner_id",
    "tie",
    "ranking",
    "strength",
    "ratings",
    "rationale",
    "shown_order",
    "time_spent_ms",
    "created_at",
)
_COMPARISON_COLUMNS = (
    "pk",
    # From here on, in the order of JudgmentRow's fields from comparison_external_id to prompt_metadata.
    "external_id",
    "candidate_ids",
    "is_gold",
    "gold_answer",
    "origin",
    "prompt_id",
    "prompt__external_id",
    "prompt__text",
    "prompt__context",
    "prompt__split",
    "prompt__metadata",
)


class ComparisonRange(NamedTuple):
    """Comparisons with ``after < id <= upto``; None: no bound on that side."""

    after: int | None = None
    upto: int | None = None


EVERY_COMPARISON = ComparisonRange()


def comparison_groups(
    project: Project,
    filters: ExportFilter,
    comparisons: ComparisonRange = EVERY_COMPARISON,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[ComparisonGroup]:
    """Every comparison in ``comparisons`` with exported judgments, in id order, its judgments by annotator id,
    read ``chunk_rows`` judgments at a time.

    ``filters.min_agreement`` is applied here, per comparison.
    """
    judgments = filters.own_judgments(project)
    if comparisons.after is not None:
        judgments = judgments.filter(comparison_id__gt=comparisons.after)
    if comparisons.upto is not None:
        judgments = judgments.filter(comparison_id__lte=comparisons.upto)
    query = judgments.order_by("comparison_id", "annotator_id").values_list(*_JUDGMENT_COLUMNS).query
    kept = filters.comparisons().order_by().values_list(*_COMPARISON_COLUMNS)
    usernames: dict[int, str] = {}  # by user id: at most one entry per annotator
    pending: list[JudgmentRow] = []
    for raw_chunk in _judgment_chunks(query, chunk_rows):
        shared = _comparisons(kept, raw_chunk)
        chunk = _judgment_rows(raw_chunk, shared, _usernames(usernames, raw_chunk))
        if not chunk:  # every comparison of the chunk filtered out
            continue
        _attach(chunk, shared)
        pending.extend(chunk)
        # The last comparison of the chunk may go on in the next one: keep it back.
        last = pending[-1].comparison_id
        cut = len(pending)
        while cut and pending[cut - 1].comparison_id == last:
            cut -= 1
        ready, pending = pending[:cut], pending[cut:]
        yield from _groups(ready, filters)
    yield from _groups(pending, filters)


def comparison_ranges(cursor, project: Project, filters: ExportFilter, judgments: int) -> list[ComparisonRange]:
    """The filtered judgments cut into ranges of comparisons of about ``judgments`` judgments each (more when
    one comparison has more), in id order, covering every comparison. Read with ``cursor`` (a parallel export's
    snapshot)."""
    ids_sql, params = filters.judgments(project).order_by().values_list("comparison_id").query.sql_with_params()
    # The comparison of every n-th judgment in (comparison, annotator) order ends a range.
    cursor.execute(
        "SELECT DISTINCT comparison_id FROM (SELECT comparison_id, row_number() OVER (ORDER BY comparison_id) AS n "
        f"FROM ({ids_sql}) AS judgment) AS numbered WHERE n %% %s = 0 ORDER BY comparison_id",
        [*params, judgments],
    )
    ends = [row[0] for row in cursor.fetchall()]
    return [ComparisonRange(after, upto) for after, upto in zip([None, *ends], [*ends, None], strict=True)]


# The ORM builds each query (filters, joins) but the rows are read raw: Django's per-value converters (a
# json.loads per JSON column, in Python) cost more than the rest of the export; orjson decodes them here.
_loads = orjson.loads


_JSON_TEXT = (str, bytes)  # a tuple, not ``str | bytes``: that builds a new union object on every call


def _json(value):
    return _loads(value) if isinstance(value, _JSON_TEXT) else value


def _moment(value) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    # SQLite keeps UTC without an offset (and its driver may hand back text or a naive datetime).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _judgment_chunks(query, chunk_rows: int) -> Iterator[list[tuple]]:
    """The judgment query's rows, ``chunk_rows`` at a time, from a server-side cursor on Postgres; ``tie`` a
    bool and ``created_at`` an aware datetime whatever the database."""
    sql, params = query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg.types.datetime import TimestamptzLoader

            # psycopg's own (C) loader: Django's, a Python subclass that only sets the time zone psycopg already
            # takes from the connection (Django sets the session's), took 2.7 µs a row.
            cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk_rows):
                yield rows
            return
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_rows):
            yield [(*row[:4], bool(row[4]), *row[5:11], _moment(row[11])) for row in rows]


def _comparisons(kept, rows: list[tuple]) -> dict[int, tuple]:
    """The columns of the chunk's comparisons that ``kept`` (the filters' comparisons) keeps, by id, in the
    order of :class:`JudgmentRow`'s fields from ``comparison_external_id`` to ``prompt_metadata``, decoded
    once per comparison and shared, read-only, by its judgments."""
    ids = dict.fromkeys(row[1] for row in rows)  # rows come by comparison
    out = {}
    for row in _queryset_by_ids(kept, ids):
        (pk, ext, candidate_ids, is_gold, gold_answer, origin, prompt_id, prompt_ext, prompt_text, context, split,
         metadata) = row  # fmt: skip
        out[pk] = (ext, _loads(candidate_ids), bool(is_gold), _json(gold_answer), _json(origin) or {}, prompt_id,
                   prompt_ext, prompt_text, _json(context) or [], split, _json(metadata) or {})  # fmt: skip
    return out


def _usernames(known: dict[int, str], rows: list[tuple]) -> dict[int, str]:
    """``known`` with the usernames of the chunk's annotators added (one query for those not known yet)."""
    missing = {row[2] for row in rows}.difference(known)
    if missing:
        known.update(_queryset_by_ids(get_user_model().objects.order_by().values_list("pk", "username"), missing))
    return known


def _judgment_rows(rows: list[tuple], comparisons: dict[int, tuple], usernames: dict[int, str]) -> list[JudgmentRow]:
    """Rows → judgments, with their comparison's columns (shared); a judgment whose comparison the filters do
    not keep is left out."""
    out = []
    append = out.append
    shared_key, shared = None, None
    for pk, comparison_id, annotator_id, winner_id, tie, ranking, strength, ratings, rationale, shown_order, \
            time_spent, created_at in rows:  # fmt: skip
        if comparison_id != shared_key:
            shared_key, shared = comparison_id, comparisons.get(comparison_id)
        if shared is None:
            continue
        append(
            JudgmentRow(
                pk,
                comparison_id,
                *shared,
                usernames[annotator_id],
                winner_id,
                tie,
                None if ranking is None else _loads(ranking),
                strength,
                _loads(ratings) or {},
                rationale,
                _loads(shown_order) or [],
                time_spent,
                created_at,
            )
        )
    return out


def _raw(queryset) -> list[tuple]:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _groups(judgments: list[JudgmentRow], filters: ExportFilter) -> Iterator[ComparisonGroup]:
    for _, members in itertools.groupby(judgments, key=lambda j: j.comparison_id):
        members = list(members)
        group = ComparisonGroup(members)
        if filters.min_agreement is not None:
            agreement = group.agreement
            if agreement is None or agreement < filters.min_agreement:
                continue
        yield group


_CANDIDATES_SQL = (
    "SELECT id, external_id, text, media, mime_type, source, origin FROM annotation_candidate WHERE id {ids}"
)
_SPANS_SQL = (
    'SELECT judgment_id, candidate_id, start, "end", box, category, note FROM annotation_spanmark '
    "WHERE judgment_id {ids} ORDER BY id"
)
# On Postgres, one index probe per judgment, always: a judgment in ten or fewer has spans, which the planner
# cannot know; estimating one per id, it chose to scan the whole table for each chunk (8 ms at 110,000 spans
# against 2 ms of probes). OFFSET 0 keeps the subquery apart, so it can only be probed once per id.
_SPANS_SQL_POSTGRES = (
    'SELECT s.judgment_id, s.candidate_id, s.start, s."end", s.box, s.category, s.note '
    "FROM unnest({array}) AS j(id) CROSS JOIN LATERAL ("
    'SELECT id, judgment_id, candidate_id, start, "end", box, category, note FROM annotation_spanmark '
    "WHERE judgment_id = j.id OFFSET 0) AS s ORDER BY s.id"
)


def _attach(chunk: list[JudgmentRow], comparisons: dict[int, tuple]) -> None:
    """Fill each judgment's candidates (one dict per comparison, shared by its judgments) and spans: one query
    per table per chunk."""
    candidates = {}
    for row in _by_ids(_CANDIDATES_SQL, {c for shared in comparisons.values() for c in shared[1]}):
        candidate = CandidateRow(*row)
        candidate.origin = _json(candidate.origin_json) or {}
        candidates[candidate.id] = candidate
    by_judgment = {}
    shown_ids, shown = None, None
    for judgment in chunk:
        by_judgment[judgment.id] = judgment
        if judgment.candidate_ids is not shown_ids:  # the same list for a comparison's judgments in a chunk
            shown_ids = judgment.candidate_ids
            shown = {c: candidates[c] for c in shown_ids}
        judgment.candidates = shown
    for judgment_id, candidate_id, start, end, box, category, note in _spans(by_judgment):
        judgment = by_judgment[judgment_id]
        judgment.spans.append(
            {
                "candidate": judgment.candidates[candidate_id].external_id,
                "start": start,
                "end": end,
                "box": _json(box),
                "category": category,
                "note": note,
            }
        )


SPANS_RANGE_SPREAD = 4
"""A chunk's spans are read by one range of judgment ids when its ids lie within this many times their number
(judgments made or imported comparison by comparison), else by probing each id."""
_SPANS_BETWEEN_SQL = (
    'SELECT judgment_id, candidate_id, start, "end", box, category, note FROM annotation_spanmark '
    "WHERE judgment_id BETWEEN %s AND %s ORDER BY id"
)


def _spans(judgments: dict[int, JudgmentRow]) -> list[tuple]:
    """The spans of these judgments (by id), in the order they were marked."""
    first, last = min(judgments), max(judgments)
    if last - first < SPANS_RANGE_SPREAD * len(judgments):
        # One walk of the judgment_id index, not a probe per judgment (most have no span); the spans of the
        # few judgments in the range that are not in the chunk are dropped.
        with connection.cursor() as cursor:
            cursor.execute(_SPANS_BETWEEN_SQL, [first, last])
            return [row for row in cursor.fetchall() if row[0] in judgments]
    return _by_ids(_SPANS_SQL_POSTGRES if connection.vendor == "postgresql" else _SPANS_SQL, judgments)


def _by_ids(sql: str, ids) -> Iterator[tuple]:
    """Rows of ``sql`` for these ids: one ``= ANY(array)`` on Postgres (a single parameter: thousands of
    ``IN`` placeholders cost more to build and parse than the query takes), ``IN`` batches elsewhere. ``sql``
    names the test on the ids ``{ids}`` (``= ANY(…)`` or ``IN (…)``), or, Postgres only, the array ``{array}``."""
    ordered = sorted(ids)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.format(ids="= ANY(%s::bigint[])", array="%s::bigint[]"), [_array(ordered)])
            yield from cursor.fetchall()
            return
        for start in range(0, len(ordered), 900):  # under SQLite's old 999-parameter limit
            batch = ordered[start : start + 900]
            cursor.execute(sql.format(ids=f"IN ({', '.join(['%s'] * len(batch))})"), batch)
            yield from cursor.fetchall()


def _queryset_by_ids(queryset, ids) -> list[tuple]:
    """The rows of ``queryset`` (a ``values_list``) whose primary key is one of ``ids``, as :func:`_by_ids`
    queries them."""
    ordered = sorted(ids)
    if connection.vendor == "postgresql":
        quote, meta = connection.ops.quote_name, queryset.model._meta
        pk = f"{quote(meta.db_table)}.{quote(meta.pk.column)}"
        # The query once per id, as the spans' lookup above: given ``pk = ANY(…)`` the planner scanned the whole
        # table (and a joined one) for every chunk, which made a large export's time grow with its square.
        sql, params = queryset.extra(where=[f"{pk} = by_id.id"]).query.sql_with_params()  # noqa: S610
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT kept.* FROM unnest(%s::bigint[]) AS by_id(id) CROSS JOIN LATERAL ({sql} OFFSET 0) AS kept",
                [_array(ordered), *params],
            )
            return cursor.fetchall()
    rows = []
    for start in range(0, len(ordered), 900):
        rows.extend(_raw(queryset.filter(pk__in=ordered[start : start + 900])))
    return rows


def _array(ids) -> str:
    # The array as one text literal: psycopg's list dumper cost more per id than the lookup itself.
    return "{" + ",".join(map(str, ids)) + "}"
