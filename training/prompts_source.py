"""Annotation ``Prompt`` rows → the prompts a policy round generates for, as plain values.

Read-only, like ``judgments_source``. A round takes ``prompts_per_round`` train-split prompts by the project's
``prompt_selection`` and up to ``eval_prompts`` eval-split prompts for the head-to-head of the new policy against
the previous one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db.models import F, Max, Q

from annotation.models import CandidateSource, Prompt, Split
from preference.prompts import render_prompt


@dataclass(frozen=True)
class PromptRecord:
    prompt_id: int
    text: str
    """The prompt with its chat context as ``role: content`` lines: what the reward model reads before a response,
    and the user message the policy answers."""


def round_prompts(*, project_id: int, count: int, selection: str, seed: int) -> list[PromptRecord]:
    """``count`` train-split prompts: ``unused`` (never generated for first, then the least recently),
    ``recent`` (newest first) or ``random`` (a sample seeded by ``seed``)."""
    prompts = Prompt.objects.filter(project_id=project_id, split=Split.TRAIN)
    if selection == "unused":
        last_generated = Max("candidates__created_at", filter=Q(candidates__source=CandidateSource.GENERATED))
        ids = list(
            prompts.annotate(last=last_generated)
            .order_by(F("last").asc(nulls_first=True), "pk")
            .values_list("pk", flat=True)[:count]
        )
    elif selection == "recent":
        ids = list(prompts.order_by("-created_at", "-pk").values_list("pk", flat=True)[:count])
    elif selection == "random":
        every = sorted(prompts.values_list("pk", flat=True))
        ids = random.Random(seed).sample(every, min(count, len(every)))
    else:
        raise ValueError(f"Unknown prompt selection {selection!r}.")
    return prompt_records(ids)


def eval_prompts(*, project_id: int, count: int) -> list[PromptRecord]:
    """The first ``count`` eval-split prompts (the same ones every round, so rounds compare on equal terms)."""
    ids = Prompt.objects.filter(project_id=project_id, split=Split.EVAL).order_by("pk").values_list("pk", flat=True)
    return prompt_records(list(ids[:count]))


def prompt_records(ids: list[int]) -> list[PromptRecord]:
    """Records in the order of ``ids``."""
    rows = {
        pk: (text, context)
        for pk, text, context in Prompt.objects.filter(pk__in=ids).values_list("pk", "text", "context")
    }
    return [PromptRecord(pk, render_prompt(*rows[pk])) for pk in ids if pk in rows]
