"""The one door from training back into annotation: generated candidates and the comparisons that show them.

Training never writes annotation's tables itself (DESIGN §2). A round hands over plain values — the prompt, the
generated texts with their origin (round, policy version, sampling parameters, seed), a priority and the
comparison's origin — and :func:`generated_comparisons_push` writes them in one transaction: every candidate and
comparison of the call, or none. The queue then serves them by priority like any other comparison.

External ids are derived from the caller's ``batch`` key (e.g. ``round-12``) and positions in the call, so a
batch pushed twice (a retried commit) finds its rows instead of adding them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from .comparisons import comparison_external_id
from .models import Candidate, CandidateSource, Comparison, Project, Prompt
from .schema import parse_schema


class PushInvalid(ValueError):
    """What a round wanted to push does not fit the project; the message says what, for a person."""


@dataclass(frozen=True)
class GeneratedCandidate:
    text: str
    origin: dict
    """Plain values saying who made it: ``{"round", "policy_version", "seed", "sampling", …}``."""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedComparison:
    prompt_id: int
    candidates: Sequence[GeneratedCandidate]
    """In stored order (the workbench shuffles what it shows and records the order shown)."""
    priority: int
    origin: dict
    """``{"round", "purpose": "policy_vs_previous" | "active", …}``: why the round asks people about it."""


@dataclass(frozen=True)
class PushResult:
    comparison_ids: list[int]
    candidates_created: int
    comparisons_created: int


def generated_comparisons_push(
    *, project: Project, batch: str, comparisons: Sequence[GeneratedComparison]
) -> PushResult:
    """Add the generated candidates and their comparisons to the project's queue, all or nothing.

    Raises :class:`PushInvalid` when a comparison has the wrong number of candidates for the project's schema or
    names a prompt of another project; nothing is written then.
    """
    arity = parse_schema(project.schema).arity
    prompts = dict(
        Prompt.objects.filter(project=project, pk__in={c.prompt_id for c in comparisons}).values_list(
            "pk", "external_id"
        )
    )
    for index, comparison in enumerate(comparisons):
        if comparison.prompt_id not in prompts:
            raise PushInvalid(f"Comparison {index}: prompt {comparison.prompt_id} is not a prompt of this project.")
        if len(comparison.candidates) != arity:
            raise PushInvalid(
                f"Comparison {index} has {len(comparison.candidates)} candidates; this project compares {arity}."
            )
    with transaction.atomic():
        candidates = _candidates_create(project, batch, comparisons)
        planned = []
        for index, comparison in enumerate(comparisons):
            members = candidates[index]
            external_id = comparison_external_id(prompts[comparison.prompt_id], [c.external_id for c in members])
            planned.append((external_id, comparison, [c.pk for c in members]))
        existing = dict(
            Comparison.objects.filter(project=project, external_id__in=[p[0] for p in planned]).values_list(
                "external_id", "pk"
            )
        )
        created = Comparison.objects.bulk_create(
            [
                Comparison(
                    project=project,
                    prompt_id=comparison.prompt_id,
                    external_id=external_id,
                    candidate_ids=candidate_ids,
                    priority=comparison.priority,
                    wanted=project.overlap,
                    origin=comparison.origin,
                )
                for external_id, comparison, candidate_ids in planned
                if external_id not in existing
            ]
        )
    by_external_id = {**existing, **{c.external_id: c.pk for c in created}}
    return PushResult(
        comparison_ids=[by_external_id[external_id] for external_id, _, _ in planned],
        candidates_created=sum(1 for members in candidates for c in members if c.created),
        comparisons_created=len(created),
    )


@dataclass
class _Stored:
    pk: int
    external_id: str
    created: bool


def _candidates_create(project: Project, batch: str, comparisons: Sequence[GeneratedComparison]) -> list[list[_Stored]]:
    """Write every candidate of the call (skipping those a previous push of the same batch wrote)."""
    wanted = [
        [
            (f"gen-{batch}-{index}-{position}", comparison.prompt_id, candidate)
            for position, candidate in enumerate(comparison.candidates)
        ]
        for index, comparison in enumerate(comparisons)
    ]
    all_ids = [external_id for members in wanted for external_id, _, _ in members]
    existing = dict(Candidate.objects.filter(project=project, external_id__in=all_ids).values_list("external_id", "pk"))
    new = [
        Candidate(
            project=project,
            prompt_id=prompt_id,
            external_id=external_id,
            text=candidate.text,
            source=CandidateSource.GENERATED,
            origin=candidate.origin,
            metadata=candidate.metadata,
        )
        for members in wanted
        for external_id, prompt_id, candidate in members
        if external_id not in existing
    ]
    created = {c.external_id: c.pk for c in Candidate.objects.bulk_create(new)}
    return [
        [_Stored(existing.get(ext) or created[ext], ext, ext in created) for ext, _, _ in members] for members in wanted
    ]
