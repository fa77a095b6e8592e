"""Annotation ``Judgment`` rows → the ML core's plain :class:`~training.ml.pairs.JudgmentRecord` values.

Read-only; ``training`` reads annotation's tables, never the reverse (DESIGN §2). The rules the pair builder
applies (gold excluded, rankings expanded, ties, strength as margin) live in ``training.ml.pairs``; here we only
translate rows, in a few queries whatever the number of judgments:

- **Which judgments**: every judgment of the project with id ≤ ``max_judgment_id`` (the round's cut-off), gold
  comparisons included but flagged ``is_gold`` so the builder can exclude them and count them.
- **Prompt text**: the prompt's chat context (if any) rendered as ``role: content`` lines, then the prompt text.
- **Split**: ``Prompt.split`` defaults to ``train``, so it is only an explicit choice once a researcher marked
  some prompt ``eval``. When any judged prompt is marked ``eval``, every prompt's stored split is honoured;
  when none is, the split is left to the builder (a stable hash of the prompt id, ``eval_fraction``).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Max

from annotation.models import Candidate, Judgment, Prompt, Split
from preference.prompts import render_prompt
from training.ml.pairs import JudgmentRecord

CANDIDATE_BATCH = 900
"""Ids per ``IN (...)`` query: below SQLite's default limit of 999 bound parameters."""


def judgment_max_id(*, project_id: int) -> int | None:
    return Judgment.objects.filter(project_id=project_id).aggregate(m=Max("id"))["m"]


def judgment_records(*, project_id: int, max_judgment_id: int | None) -> list[JudgmentRecord]:
    """Every judgment of the project up to the cut-off, as plain records (oldest first)."""
    if max_judgment_id is None:
        return []
    rows = list(
        Judgment.objects.filter(project_id=project_id, pk__lte=max_judgment_id)
        .order_by("pk")
        .values_list(
            "pk",
            "comparison_id",
            "comparison__prompt_id",
            "comparison__candidate_ids",
            "comparison__is_gold",
            "annotator_id",
            "winner_id",
            "tie",
            "ranking",
            "strength",
        )
    )
    prompt_ids = {row[2] for row in rows}
    prompts = {
        pk: (text, context, split)
        for pk, text, context, split in _in_batches(
            Prompt.objects.values_list("pk", "text", "context", "split"), prompt_ids
        )
    }
    texts = dict(_in_batches(Candidate.objects.values_list("pk", "text"), {c for row in rows for c in row[3]}))
    explicit_split = any(split == Split.EVAL for _, _, split in prompts.values())

    records = []
    for pk, comparison_id, prompt_id, candidate_ids, is_gold, annotator_id, winner, tie, ranking, strength in rows:
        text, context, split = prompts[prompt_id]
        records.append(
            JudgmentRecord(
                judgment_id=pk,
                comparison_id=comparison_id,
                prompt_id=prompt_id,
                prompt_text=render_prompt(text, context),
                candidates={c: texts[c] for c in candidate_ids},
                winner=winner,
                tie=tie,
                ranking=list(ranking) if ranking is not None else None,
                strength=strength,
                is_gold=is_gold,
                annotator_id=annotator_id,
                split=split if explicit_split else None,
            )
        )
    return records


def _in_batches(values_qs, ids: set[int]) -> Iterator[tuple]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CANDIDATE_BATCH):
        yield from values_qs.filter(pk__in=ordered[start : start + CANDIDATE_BATCH])
