"""The judgments of an export, read a chunk at a time and handed out one comparison at a time.

Memory stays flat whatever the project's size: one server-side cursor (``QuerySet.iterator(chunk_size=…)``,
a named cursor on Postgres) walks the filtered judgments in (comparison, annotator) order — the order of the
unique index — and for each chunk of rows one query fetches the candidates they show and one the spans they
mark. A comparison's judgments are contiguous in that order, so they are grouped (for agreement) without
holding more than one chunk and one comparison. Nothing is cached across chunks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import orjson
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
    """The exported judgments of one comparison, with their pair votes."""

    judgments: list[JudgmentRow]
    votes: PairVotes

    @property
    def agreement(self) -> float | None:
        return self.votes.comparison_agreement()


_FIELDS = (
    "pk",
    "comparison_id",
    "comparison__external_id",
    "comparison__candidate_ids",
    "comparison__is_gold",
    "comparison__gold_answer",
    "comparison__origin",
    "comparison__prompt_id",
    "comparison__prompt__external_id",
    "comparison__prompt__text",
    "comparison__prompt__context",
    "comparison__prompt__split",
    "comparison__prompt__metadata",
    "annotator__username",
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


class ComparisonRange(NamedTuple):
    """Comparisons with ``after < id <= upto``; None: no bound on that side."""

    after: int | None = None
    upto: int | None = None


EVERY_COMPARISON = ComparisonRange()


def comparison_groups(
    project: Project, filters: ExportFilter, comparisons: ComparisonRange = EVERY_COMPARISON
) -> Iterator[ComparisonGroup]:
    """Every comparison in ``comparisons`` with exported judgments, in id order, its judgments by annotator id.

    ``filters.min_agreement`` is applied here, per comparison.
    """
    judgments = filters.judgments(project)
    if comparisons.after is not None:
        judgments = judgments.filter(comparison_id__gt=comparisons.after)
    if comparisons.upto is not None:
        judgments = judgments.filter(comparison_id__lte=comparisons.upto)
    query = judgments.order_by("comparison_id", "annotator_id").values_list(*_FIELDS).query
    pending: list[JudgmentRow] = []
    for raw_chunk in _raw_chunks(query, CHUNK_ROWS):
        chunk = _judgment_rows(raw_chunk)
        _attach(chunk)
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


def _judgment_rows(rows: list[tuple]) -> list[JudgmentRow]:
    """Rows → judgments. The comparison's and prompt's columns repeat on each of a comparison's judgments (rows
    come by comparison): they are decoded once per comparison and shared, read-only, by its judgments."""
    out = []
    shared_key, shared = None, None
    for row in rows:
        (pk, comparison_id, comparison_ext, candidate_ids, is_gold, gold_answer, origin, prompt_id, prompt_ext,
         prompt_text, context, split, metadata, annotator, winner_id, tie, ranking, strength, ratings, rationale,
         shown_order, time_spent, created_at) = row  # fmt: skip
        if comparison_id != shared_key:
            shared_key = comparison_id
            shared = (_loads(candidate_ids), _json(gold_answer), _json(origin) or {}, _json(context) or [],
                      _json(metadata) or {})  # fmt: skip
        out.append(
            JudgmentRow(
                pk,
                comparison_id,
                comparison_ext,
                shared[0],
                bool(is_gold),
                shared[1],
                shared[2],
                prompt_id,
                prompt_ext,
                prompt_text,
                shared[3],
                split,
                shared[4],
                annotator,
                winner_id,
                bool(tie),
                _json(ranking),
                strength,
                _json(ratings) or {},
                rationale,
                _json(shown_order) or [],
                time_spent,
                _moment(created_at),
            )
        )
    return out


def _raw_chunks(query, chunk_rows: int) -> Iterator[list[tuple]]:
    """The query's rows, ``chunk_rows`` at a time, from a server-side cursor on Postgres."""
    sql, params = query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_rows):
            yield rows


def _raw(queryset) -> list[tuple]:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _groups(judgments: list[JudgmentRow], filters: ExportFilter) -> Iterator[ComparisonGroup]:
    for _, members in itertools.groupby(judgments, key=lambda j: j.comparison_id):
        members = list(members)
        group = ComparisonGroup(members, PairVotes(j.pairs() for j in members))
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


def _attach(chunk: list[JudgmentRow]) -> None:
    """Fill each judgment's candidates and spans: one query per table per chunk."""
    candidates = {}
    for row in _by_ids(_CANDIDATES_SQL, {c for j in chunk for c in j.candidate_ids}):
        candidate = CandidateRow(*row)
        candidate.origin = _json(candidate.origin_json) or {}
        candidates[candidate.id] = candidate
    by_judgment = {j.id: j for j in chunk}
    for judgment in chunk:
        judgment.candidates = {c: candidates[c] for c in judgment.candidate_ids}
    for judgment_id, candidate_id, start, end, box, category, note in _by_ids(_SPANS_SQL, by_judgment):
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


def _by_ids(sql: str, ids) -> Iterator[tuple]:
    """Rows of ``sql`` for these ids: one ``= ANY(array)`` on Postgres (a single parameter: thousands of
    ``IN`` placeholders cost more to build and parse than the query takes), ``IN`` batches elsewhere."""
    ordered = sorted(ids)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The array as one text literal: psycopg's list dumper cost more per id than the lookup itself.
            literal = "{" + ",".join(map(str, ordered)) + "}"
            cursor.execute(sql.format(ids="= ANY(%s::bigint[])"), [literal])
            yield from cursor.fetchall()
            return
        for start in range(0, len(ordered), 900):  # under SQLite's old 999-parameter limit
            batch = ordered[start : start + 900]
            cursor.execute(sql.format(ids=f"IN ({', '.join(['%s'] * len(batch))})"), batch)
            yield from cursor.fetchall()
