"""Annotation ``Judgment`` rows → the ML core's plain :class:`~training.ml.pairs.JudgmentRecord` values.

Read-only; ``training`` reads annotation's tables, never the reverse (DESIGN §2). The rules the pair builder
applies (gold excluded, rankings expanded, ties, strength as margin) live in ``training.ml.pairs``; here we only
translate rows, in a few queries whatever the number of judgments:

- **Which judgments**: every judgment of the project with id ≤ ``max_judgment_id`` (the round's cut-off), gold
  checks included but flagged ``is_gold`` so the builder can exclude them and count them. The judgments a
  comparison had before a researcher promoted it to gold are ordinary labels, not gold checks
  (``annotation.quality.promotion.is_gold_check``).
- **Prompt text**: the prompt's chat context (if any) rendered as ``role: content`` lines, then the prompt text.
- **Split**: ``Prompt.split`` defaults to ``train``, so it is only an explicit choice once a researcher marked
  some prompt ``eval``. When any prompt with a non-gold judgment is marked ``eval``, every prompt's stored
  split is honoured; when none is, the split is left to the builder (a stable hash of the prompt id,
  ``eval_fraction``). Gold comparisons never train and never decide this: a gold check on a prompt marked
  ``eval`` must not switch the whole project from the hashed split to the stored one.
- **Span marks** (:func:`span_examples`): text marks of non-gold judgments, per (judgment, candidate).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Q

from annotation.models import Candidate, Judgment, Prompt, SpanMark, Split
from annotation.quality.promotion import is_gold_check, judgments_before_promotion
from annotation.schema import SchemaError, parse_schema
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
            "shown_order",
            "comparison__origin",
        )
    )
    # Whether each judgment is a gold check, in place of its comparison's flag.
    rows = [(*row[:4], is_gold_check(is_gold=row[4], origin=row[11], judgment_id=row[0]), *row[5:11]) for row in rows]
    prompt_ids = {row[2] for row in rows}
    prompts = {
        pk: (text, context, split)
        for pk, text, context, split in _in_batches(
            Prompt.objects.values_list("pk", "text", "context", "split"), prompt_ids
        )
    }
    texts = {
        pk: media_reference(media) if media else text
        for pk, text, media in _in_batches(
            Candidate.objects.values_list("pk", "text", "media"), {c for row in rows for c in row[3]}
        )
    }
    trained_prompts = {row[2] for row in rows if not row[4]}  # row[4]: a gold check
    explicit_split = any(prompts[pk][2] == Split.EVAL for pk in trained_prompts)

    records = []
    for row in rows:
        pk, comparison_id, prompt_id, candidate_ids, is_gold, annotator_id, winner, tie, ranking, strength, shown = row
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
                shown_order=list(shown) if shown else None,
            )
        )
    return records


def media_reference(name: str) -> str:
    """What the ML core reads for a media candidate: its local path, or (remote storage such as S3) its bytes as a
    ``data:`` URI."""
    storage = Candidate._meta.get_field("media").storage
    try:
        return storage.path(name)
    except NotImplementedError:
        with storage.open(name, "rb") as f:
            data = f.read()
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def span_categories(project) -> tuple[str, ...]:
    """The keys of the project's span categories, in schema order (the span model's head order)."""
    try:
        schema = parse_schema(project.schema)
    except SchemaError:
        return ()
    return tuple(category.key for category in schema.span_categories)


def span_examples(*, project_id: int, max_judgment_id: int | None, categories: Sequence[str]) -> list[SpanExampleRow]:
    """Every judgment up to the cut-off that is not a gold check, with at least one text mark of ``categories``, as
    one example per candidate it showed: the candidate's text, the prompt it answers and the marks this judgment put
    on it.

    Rule: an annotator who marked something in a comparison is taken to have read all of it, so a candidate of
    that judgment without marks is an example of clean text (every segment negative). Judgments without any
    mark say nothing about spans (marking may be optional in the schema) and give no example. Marks of
    categories that are no longer in the schema are ignored; offsets are code points, clipped to the text.
    """
    from training.ml import span_rewards as ml  # imports torch: only where span models are trained

    if max_judgment_id is None or not categories:
        return []
    not_gold_checks = Q(judgment__comparison__is_gold=False)
    before_promotion = judgments_before_promotion(project_id=project_id)
    if before_promotion:
        not_gold_checks |= Q(judgment_id__in=before_promotion)
    marks = list(
        SpanMark.objects.filter(
            not_gold_checks,
            judgment__project_id=project_id,
            judgment_id__lte=max_judgment_id,
            category__in=list(categories),
            start__isnull=False,
            end__isnull=False,
        )
        .order_by("judgment_id", "pk")
        .values_list("judgment_id", "candidate_id", "start", "end", "category")
    )
    if not marks:
        return []
    judgments = {
        pk: (prompt_id, candidate_ids)
        for pk, prompt_id, candidate_ids in _in_batches(
            Judgment.objects.values_list("pk", "comparison__prompt_id", "comparison__candidate_ids"),
            {m[0] for m in marks},
        )
    }
    prompts = {
        pk: render_prompt(text, context)
        for pk, text, context in _in_batches(
            Prompt.objects.values_list("pk", "text", "context"), {p for p, _ in judgments.values()}
        )
    }
    texts = dict(
        _in_batches(Candidate.objects.values_list("pk", "text"), {c for _, ids in judgments.values() for c in ids})
    )
    by_candidate: dict[tuple[int, int], list] = {}
    for judgment_id, candidate_id, start, end, category in marks:
        by_candidate.setdefault((judgment_id, candidate_id), []).append((start, end, category))
    out = []
    for judgment_id in sorted(judgments):
        prompt_id, candidate_ids = judgments[judgment_id]
        for candidate_id in candidate_ids:
            text = texts.get(candidate_id) or ""
            if not text.strip():
                continue  # a media candidate, or an empty one: no sentences to score
            values = []
            for start, end, category in by_candidate.get((judgment_id, candidate_id), []):
                start, end = max(0, int(start)), min(len(text), round(end))
                if start < end:
                    values.append(ml.SpanMark(start, end, category))
            example = ml.SpanExample(text=text, marks=tuple(values), prompt=prompts[prompt_id])
            out.append(SpanExampleRow(judgment_id=judgment_id, prompt_id=prompt_id, example=example))
    return out


@dataclass(frozen=True)
class SpanExampleRow:
    judgment_id: int
    prompt_id: int
    example: Any
    """A :class:`training.ml.span_rewards.SpanExample` (imported lazily: the ML core imports torch)."""


def _in_batches(values_qs, ids: set[int]) -> Iterator[tuple]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CANDIDATE_BATCH):
        yield from values_qs.filter(pk__in=ordered[start : start + CANDIDATE_BATCH])
