"""Comparisons built from prompts and their candidates.

The one place that knows how candidates are grouped into comparisons
(:func:`candidate_groups`) and how a comparison's external id is derived
(:func:`comparison_external_id`). The importer's bundle format and
:func:`comparisons_build` both go through them, so a pair built here and the same
pair imported from a bundle are the same comparison (re-running either is a no-op).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import combinations

from django.db import transaction

from .models import Candidate, Comparison, Project, Prompt
from .queue import serve_order
from .schema import parse_schema

BUILD_MODES = ("pairs", "groups")

# A gold check is served to every annotator once (annotation.queue serves each
# comparison at most once per annotator), so it never runs out of wanted judgments.
GOLD_WANTED = 1_000_000

BUILD_BATCH = 500  # prompts per round of queries and inserts in comparisons_build
LOOKUP_CHUNK = 5000  # ids per "IN (...)" list: well under SQLite's limit of 32,766 parameters


class BuildModeInvalid(ValueError):
    pass


def candidate_groups(candidate_ids: Sequence, *, mode: str, arity: int) -> list[list]:
    """Group one prompt's candidates (in their stored order) into comparisons.

    - ``pairs``: every unordered pair, each in the order the candidates come
      (``[a, b, c]`` → ``[a, b], [a, c], [b, c]``). Only for pairwise projects (arity 2).
    - ``groups``: consecutive groups of ``arity`` candidates. A remainder is filled
      up with candidates from the start of the list, so every candidate appears in
      at least one comparison: ``[a, b, c, d, e]`` with arity 2 →
      ``[a, b], [c, d], [e, a]``.

    Fewer than ``arity`` candidates (or fewer than two for pairs) give no groups.
    """
    ids = list(candidate_ids)
    if mode == "pairs":
        if arity != 2:
            raise BuildModeInvalid(
                f"'pairs' needs a pairwise project (arity 2); this project compares {arity} candidates: use 'groups'."
            )
        return [list(pair) for pair in combinations(ids, 2)]
    if mode == "groups":
        if len(ids) < arity:
            return []
        groups = []
        for start in range(0, len(ids), arity):
            group = ids[start : start + arity]
            if len(group) < arity:
                group += ids[: arity - len(group)]
            groups.append(group)
        return groups
    raise BuildModeInvalid(f"Unknown mode {mode!r}; use one of: {', '.join(BUILD_MODES)}.")


def comparison_external_id(prompt_external_id: str, candidate_external_ids: Sequence[str]) -> str:
    """The external id of a comparison that was given none: a hash of its prompt and
    candidates in order, so building or importing the same comparison twice finds it."""
    key = "\x1f".join([prompt_external_id, *candidate_external_ids])
    return "cmp-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def comparisons_build(*, project: Project, mode: str, prompt_ids: list[int] | None = None, priority: int = 0) -> int:
    """Create comparisons over the candidates of the project's prompts (all prompts,
    or the given prompt primary keys); returns how many were created.

    Candidates are taken in primary-key order and grouped by :func:`candidate_groups`;
    prompts with fewer than two candidates (fewer than ``arity`` for groups) get
    none. Idempotent: a comparison whose derived external id exists is skipped.
    """
    arity = parse_schema(project.schema).arity
    candidate_groups([], mode=mode, arity=arity)  # reject a bad mode before any query
    prompts = Prompt.objects.filter(project=project).order_by("pk").values_list("pk", "external_id")
    if prompt_ids is not None:
        prompts = prompts.filter(pk__in=prompt_ids)
    created = 0
    batch: list[tuple[int, str]] = []
    for prompt in prompts.iterator(chunk_size=BUILD_BATCH):
        batch.append(prompt)
        if len(batch) == BUILD_BATCH:
            created += _build_for_prompts(project, batch, mode, arity, priority)
            batch = []
    if batch:
        created += _build_for_prompts(project, batch, mode, arity, priority)
    return created


def _build_for_prompts(project: Project, prompts: list[tuple[int, str]], mode: str, arity: int, priority: int) -> int:
    candidates_by_prompt: dict[int, list[tuple[int, str]]] = {pk: [] for pk, _ in prompts}
    rows = Candidate.objects.filter(prompt_id__in=candidates_by_prompt).order_by("pk")
    for pk, prompt_id, external_id in rows.values_list("pk", "prompt_id", "external_id"):
        candidates_by_prompt[prompt_id].append((pk, external_id))

    planned = []  # (external id, prompt pk, [candidate pks])
    for prompt_pk, prompt_external_id in prompts:
        for group in candidate_groups(candidates_by_prompt[prompt_pk], mode=mode, arity=arity):
            external_id = comparison_external_id(prompt_external_id, [ext for _, ext in group])
            planned.append((external_id, prompt_pk, [pk for pk, _ in group]))
    planned_ids = [p[0] for p in planned]
    existing = set()
    for start in range(0, len(planned_ids), LOOKUP_CHUNK):
        chunk = planned_ids[start : start + LOOKUP_CHUNK]
        existing.update(
            Comparison.objects.filter(project=project, external_id__in=chunk).values_list("external_id", flat=True)
        )
    new = [p for p in planned if p[0] not in existing]
    with transaction.atomic():
        comparisons = Comparison.objects.bulk_create(
            [
                Comparison(
                    project=project,
                    prompt_id=prompt_pk,
                    external_id=external_id,
                    candidate_ids=candidate_pks,
                    priority=priority,
                    wanted=project.overlap,
                    serve_order=serve_order(
                        together=project.serve_prompt_pairs_together, prompt_id=prompt_pk, external_id=external_id
                    ),
                )
                for external_id, prompt_pk, candidate_pks in new
            ],
            batch_size=BUILD_BATCH,
        )
    return len(comparisons)
