"""The one door from training back into annotation: generated candidates and the comparisons that show them.

Training never writes annotation's tables itself (DESIGN §2). A round hands over plain values — the prompt, the
generated texts with their origin (round, policy version, sampling parameters, seed), a priority and the
comparison's origin — and :func:`generated_comparisons_push` writes them in one transaction: every candidate and
comparison of the call, or none. The queue then serves them by priority like any other comparison.

External ids are derived from the caller's ``batch`` key (e.g. ``round-12``) and positions in the call, so a
batch pushed twice (a retried commit) finds its rows instead of adding them again.

A generated image comes as bytes (``GeneratedCandidate.media``): annotation.media checks it by its content before
anything is written and stores it by content hash; the files of a push that fails are deleted again. (A push
inside a caller's transaction that the caller later rolls back leaves its new files behind: unreferenced, harmless,
and found again by content hash when the round pushes the same images.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from .comparisons import comparison_external_id
from .media import MediaInfo, MediaInvalid, media_check, media_discard, media_store
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
    media: bytes | None = None
    """The generated file (an image: PNG, JPEG, WebP or GIF), in a project of that modality; its type is read from
    the bytes. ``text`` may then be empty or a caption."""


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

    Raises :class:`PushInvalid` when a comparison has the wrong number of candidates for the project's schema,
    names a prompt of another project, or carries media that annotation.media refuses; nothing is written then.
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
    checked = _media_check(project, comparisons)
    stored: list[str] = []
    try:
        result = _push(project, batch, comparisons, prompts, checked, stored)
    except BaseException:
        # The rows were rolled back; the files stored for them go too (those that no other candidate uses).
        media_discard(stored)
        raise
    return result


def _media_check(project: Project, comparisons: Sequence[GeneratedComparison]) -> dict[tuple[int, int], MediaInfo]:
    """Every candidate's media checked before anything is written: ``{(comparison, position): info}``."""
    checked = {}
    for index, comparison in enumerate(comparisons):
        for position, candidate in enumerate(comparison.candidates):
            if candidate.media is None:
                continue
            try:
                checked[index, position] = media_check(
                    candidate.media, modality=project.modality, name=f"comparison {index}, candidate {position}"
                )
            except MediaInvalid as exc:
                raise PushInvalid(str(exc)) from exc
    return checked


def _push(
    project: Project,
    batch: str,
    comparisons: Sequence[GeneratedComparison],
    prompts: dict[int, str],
    checked: dict[tuple[int, int], MediaInfo],
    stored: list[str],
) -> PushResult:
    with transaction.atomic():
        candidates = _candidates_create(project, batch, comparisons, checked, stored)
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
                    # No hashed serve_order: a push comes in the order its caller wants served (active selection:
                    # highest reward-model disagreement first), and equal serve_orders are served by id.
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


def _candidates_create(
    project: Project,
    batch: str,
    comparisons: Sequence[GeneratedComparison],
    checked: dict[tuple[int, int], MediaInfo],
    stored: list[str],
) -> list[list[_Stored]]:
    """Write every candidate of the call (skipping those a previous push of the same batch wrote), storing the
    media of the new ones first; the names of files stored anew go to ``stored``."""
    wanted = [
        [
            (f"gen-{batch}-{index}-{position}", comparison.prompt_id, candidate, checked.get((index, position)))
            for position, candidate in enumerate(comparison.candidates)
        ]
        for index, comparison in enumerate(comparisons)
    ]
    all_ids = [external_id for members in wanted for external_id, _, _, _ in members]
    existing = dict(Candidate.objects.filter(project=project, external_id__in=all_ids).values_list("external_id", "pk"))
    new = []
    for members in wanted:
        for external_id, prompt_id, candidate, info in members:
            if external_id in existing:
                continue
            media = {}
            if info is not None:
                # Inside the transaction, so a failure below rolls the rows back and the caller deletes the file.
                file = media_store(candidate.media, modality=project.modality, name=external_id, checked=info)
                if file.created:
                    stored.append(file.name)
                media = {
                    "media": file.name,
                    "mime_type": file.mime_type,
                    "media_width": file.width,
                    "media_height": file.height,
                }
            new.append(
                Candidate(
                    project=project,
                    prompt_id=prompt_id,
                    external_id=external_id,
                    text=candidate.text,
                    source=CandidateSource.GENERATED,
                    origin=candidate.origin,
                    metadata=candidate.metadata,
                    **media,
                )
            )
    created = {c.external_id: c.pk for c in Candidate.objects.bulk_create(new)}
    return [
        [_Stored(existing.get(ext) or created[ext], ext, ext in created) for ext, _, _, _ in members]
        for members in wanted
    ]
