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
from datetime import datetime

from django.db import connection

from preference.expansion import PairVotes, ordered_pairs

from ..models import Candidate, Project, SpanMark
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
    origin: dict


@dataclass(slots=True)
class JudgmentRow:
    id: int
    comparison_id: int
    comparison_external_id: str
    candidate_ids: list[int]
    is_gold: bool
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

    def pairs(self, *, margin_scale: float = 1.0) -> list[tuple[int, int, float, float]]:
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


def comparison_groups(
    project: Project, filters: ExportFilter, *, chunk_rows: int = CHUNK_ROWS
) -> Iterator[ComparisonGroup]:
    """Every comparison with exported judgments, in id order, its judgments by annotator id.

    ``filters.min_agreement`` is applied here, per comparison.
    """
    rows = (
        filters.judgments(project)
        .order_by("comparison_id", "annotator_id")
        .values_list(*_FIELDS)
        .iterator(chunk_size=chunk_rows)
    )
    pending: list[JudgmentRow] = []
    while True:
        chunk = [JudgmentRow(*row) for row in itertools.islice(rows, chunk_rows)]
        if not chunk:
            break
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


def _groups(judgments: list[JudgmentRow], filters: ExportFilter) -> Iterator[ComparisonGroup]:
    for _, members in itertools.groupby(judgments, key=lambda j: j.comparison_id):
        members = list(members)
        group = ComparisonGroup(members, PairVotes(j.pairs() for j in members))
        if filters.min_agreement is not None:
            agreement = group.agreement
            if agreement is None or agreement < filters.min_agreement:
                continue
        yield group


def _attach(chunk: list[JudgmentRow]) -> None:
    """Fill each judgment's candidates and spans: one query per table per chunk."""
    candidate_ids = {c for j in chunk for c in j.candidate_ids}
    candidates = {
        row[0]: CandidateRow(*row)
        for row in _in_lists(
            Candidate.objects.values_list("pk", "external_id", "text", "media", "mime_type", "source", "origin"),
            "pk",
            candidate_ids,
        )
    }
    by_judgment = {j.id: j for j in chunk}
    for judgment in chunk:
        judgment.candidates = {c: candidates[c] for c in judgment.candidate_ids}
    spans = _in_lists(
        SpanMark.objects.order_by("pk").values_list(
            "judgment_id", "candidate_id", "start", "end", "box", "category", "note"
        ),
        "judgment_id",
        by_judgment,
    )
    for judgment_id, candidate_id, start, end, box, category, note in spans:
        judgment = by_judgment[judgment_id]
        judgment.spans.append(
            {
                "candidate": judgment.candidates[candidate_id].external_id,
                "start": start,
                "end": end,
                "box": box,
                "category": category,
                "note": note,
            }
        )


def _in_lists(values_qs, column: str, ids) -> Iterator[tuple]:
    ordered = sorted(ids)
    # SQLite builds before 3.32 allow 999 bound parameters; Postgres takes the whole chunk at once.
    step = (len(ordered) or 1) if connection.vendor == "postgresql" else 900
    for start in range(0, len(ordered), step):
        yield from values_qs.filter(**{f"{column}__in": ordered[start : start + step]})
