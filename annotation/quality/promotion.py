"""A researcher promotes a unanimous comparison to gold from the dashboard, and can demote it again.

A comparison may become gold once it has at least ``promote_min_judgments`` judgments (the project's gold settings)
that all give the same answer, which becomes its ``gold_answer``. It is then served as a gold check to every
annotator who has not seen it yet (``wanted`` = ``GOLD_WANTED``, as for imported gold).

The judgments given before the promotion stay ordinary labels: they keep training reward models and count in the
agreement and reliability figures, and they are not graded as gold checks (their answers defined the gold answer,
so grading them would be circular). Only judgments given after the promotion are gold checks. The comparison keeps
the record in ``origin["gold_promotion"]`` — who, when, its ``wanted`` and status before, and the ids of the
judgments given before — and :func:`is_gold_check` is the one rule training and the quality figures read.
Exports and the stats page describe the comparison as it is now (``is_gold`` true), judgments and all.

Demoting puts the comparison back as it was (``wanted`` raised to the judgments it has received meanwhile); the
gold checks given in between become ordinary labels. Only promoted comparisons can be demoted: imported gold has
no "before". Both are written to the admin log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from ..comparisons import GOLD_WANTED
from ..models import Candidate, Comparison, ComparisonStatus, Judgment, Project
from ..quality_models import ComparisonConsensus
from .audit import audit_log
from .gold import parse_gold_settings

PROMOTION = "gold_promotion"
"""The key of the promotion record in ``Comparison.origin``."""

LIST_LIMIT = 50
"""Comparisons listed on each side (ready to become gold, promoted): a page for a person to read, not an export."""

EXCERPT = 200
"""Characters of prompt and answer text shown per comparison."""


class PromotionError(ValueError):
    """The comparison cannot be promoted or demoted; the message says why."""


class ComparisonNotFound(PromotionError):
    """No comparison with this id in the project."""


def is_gold_check(*, is_gold: bool, origin: dict | None, judgment_id: int) -> bool:
    """Whether a judgment is graded as a gold check: it answers a gold comparison, and not before a promotion."""
    if not is_gold:
        return False
    promotion = (origin or {}).get(PROMOTION)
    return not promotion or judgment_id not in promotion.get("judgments", ())


def judgments_before_promotion(*, project_id: int) -> set[int]:
    """The judgments of the project's promoted comparisons that were given before the promotion (ordinary labels)."""
    ids: set[int] = set()
    for origin in Comparison.objects.filter(project_id=project_id, is_gold=True, origin__has_key=PROMOTION).values_list(
        "origin", flat=True
    ):
        ids.update(origin[PROMOTION].get("judgments", ()))
    return ids


def _answer_key(winner_id, tie: bool, ranking) -> tuple:
    if tie:
        return ("tie",)
    if ranking is not None:
        return ("ranking", tuple(ranking))
    return ("winner", winner_id)


def _gold_answer(key: tuple) -> dict:
    """The answer in ``Comparison.gold_answer``'s shape: ``{"winner": id} | {"ranking": [ids]} | {"tie": true}``."""
    if key[0] == "tie":
        return {"tie": True}
    if key[0] == "ranking":
        return {"ranking": list(key[1])}
    return {"winner": key[1]}


def _unanimous(answers: Iterable[tuple]) -> tuple | None:
    distinct = set(answers)
    return next(iter(distinct)) if len(distinct) == 1 else None


def _describe(answers: list[tuple]) -> str:
    """``[("winner", 4), ("winner", 4), ("tie",)]`` → "2 for candidate 4, 1 for a tie"."""
    words = {"tie": lambda key: "a tie", "ranking": lambda key: f"ranking {list(key[1])}"}
    return ", ".join(
        f"{n} for {words.get(key[0], lambda key: f'candidate {key[1]}')(key)}"
        for key, n in Counter(answers).most_common()
    )


def comparison_promote(*, project: Project, comparison_id: int, actor) -> Comparison:
    """Make the comparison a gold check whose answer is its judgments' unanimous answer."""
    minimum = parse_gold_settings(project.gold_settings).promote_min_judgments
    with transaction.atomic():
        # The row lock orders this against a concurrent submission, which updates the same row.
        comparison = Comparison.objects.select_for_update().filter(project=project, pk=comparison_id).first()
        if comparison is None:
            raise ComparisonNotFound(f"No comparison {comparison_id} in this project.")
        if comparison.is_gold:
            raise PromotionError(f"Comparison {comparison.external_id!r} is already a gold check.")
        judgments = list(
            Judgment.objects.filter(comparison=comparison)
            .order_by("pk")
            .values_list("pk", "winner_id", "tie", "ranking")
        )
        answers = [_answer_key(winner, tie, ranking) for _, winner, tie, ranking in judgments]
        if len(answers) < minimum:
            raise PromotionError(
                f"Comparison {comparison.external_id!r} has {len(answers)} judgment{'' if len(answers) == 1 else 's'};"
                f" promoting it to gold needs at least {minimum} (the project's promote_min_judgments)."
            )
        answer = _unanimous(answers)
        if answer is None:
            raise PromotionError(
                f"The judgments of comparison {comparison.external_id!r} disagree ({_describe(answers)}): only a "
                "unanimous comparison can become gold."
            )
        comparison.origin = {
            **(comparison.origin or {}),
            PROMOTION: {
                "by": actor.pk,
                "at": timezone.now().isoformat(timespec="seconds"),
                "wanted": comparison.wanted,
                "status": comparison.status,
                "judgments": [pk for pk, *_ in judgments],
            },
        }
        comparison.is_gold = True
        comparison.gold_answer = _gold_answer(answer)
        comparison.wanted = GOLD_WANTED
        if comparison.status == ComparisonStatus.DONE:
            comparison.status = ComparisonStatus.OPEN
        comparison.save(update_fields=["origin", "is_gold", "gold_answer", "wanted", "status"])
        audit_log(
            actor=actor,
            project=project,
            message=f"Promoted comparison {comparison.pk} ({comparison.external_id}) to gold: "
            f"{len(answers)} judgments agree on {comparison.gold_answer}",
        )
    return comparison


def comparison_demote(*, project: Project, comparison_id: int, actor) -> Comparison:
    """Undo a promotion: the comparison is an ordinary one again, with the judgments it received as gold."""
    with transaction.atomic():
        comparison = Comparison.objects.select_for_update().filter(project=project, pk=comparison_id).first()
        if comparison is None:
            raise ComparisonNotFound(f"No comparison {comparison_id} in this project.")
        promotion = (comparison.origin or {}).get(PROMOTION)
        if not comparison.is_gold:
            raise PromotionError(f"Comparison {comparison.external_id!r} is not a gold check.")
        if not promotion:
            raise PromotionError(
                f"Comparison {comparison.external_id!r} was imported as gold, not promoted from the dashboard: "
                "there is no earlier state to go back to."
            )
        comparison.origin = {k: v for k, v in comparison.origin.items() if k != PROMOTION}
        comparison.is_gold = False
        comparison.gold_answer = None
        # The queue's invariant judged + leased <= wanted: judgments received as gold stay, so wanted may grow.
        comparison.wanted = max(promotion["wanted"], comparison.judged + comparison.leased)
        if comparison.status != ComparisonStatus.PAUSED:
            done = comparison.judged >= comparison.wanted
            comparison.status = ComparisonStatus.DONE if done else ComparisonStatus.OPEN
        comparison.save(update_fields=["origin", "is_gold", "gold_answer", "wanted", "status"])
        audit_log(
            actor=actor,
            project=project,
            message=f"Demoted comparison {comparison.pk} ({comparison.external_id}) from gold",
        )
    return comparison


def gold_promotion_overview(*, project: Project) -> dict:
    """The dashboard's two lists: comparisons ready to become gold (unanimous, at least ``promote_min_judgments``
    judgments, not gold; most judgments first) and the promoted ones (newest first), each at most
    :data:`LIST_LIMIT`."""
    minimum = parse_gold_settings(project.gold_settings).promote_min_judgments
    # One grouped pass over the project's judgments: a comparison is unanimous when its judgments are all ties, all
    # one winner, or all rankings (compared below, since a ranking is JSON).
    groups = (
        Judgment.objects.filter(project=project, comparison__is_gold=False)
        .values("comparison_id")
        .annotate(
            n=Count("id"),
            winners=Count("winner_id", distinct=True),
            ties=Count("id", filter=Q(tie=True)),
            ranked=Count("id", filter=Q(ranking__isnull=False)),
        )
        .filter(n__gte=minimum)
        .filter(Q(ties=F("n")) | Q(winners=1, ties=0, ranked=0) | Q(ranked=F("n")))
        .order_by("-n", "comparison_id")
    )
    ready: list[tuple[int, tuple, int]] = []
    for batch in _batches(groups.values_list("comparison_id", "n").iterator(), LIST_LIMIT):
        ids = [pk for pk, _ in batch]
        answers: dict[int, list[tuple]] = {pk: [] for pk in ids}
        for comparison_id, winner, tie, ranking in Judgment.objects.filter(comparison_id__in=ids).values_list(
            "comparison_id", "winner_id", "tie", "ranking"
        ):
            answers[comparison_id].append(_answer_key(winner, tie, ranking))
        for pk, n in batch:
            answer = _unanimous(answers[pk])
            if answer is not None:
                ready.append((pk, answer, n))
        if len(ready) >= LIST_LIMIT:
            break
    ready = ready[:LIST_LIMIT]

    promoted = list(
        Comparison.objects.filter(project=project, is_gold=True, origin__has_key=PROMOTION)
        .order_by(f"-origin__{PROMOTION}__at", "-pk")
        .values_list("pk", "gold_answer", "origin")[:LIST_LIMIT]
    )
    judged = dict(
        Judgment.objects.filter(comparison_id__in=[pk for pk, *_ in promoted])
        .values_list("comparison_id")
        .annotate(n=Count("id"))
        .order_by()
    )

    ids = [pk for pk, _, _ in ready] + [pk for pk, *_ in promoted]
    comparisons = {
        pk: (external_id, candidate_ids, prompt_text)
        for pk, external_id, candidate_ids, prompt_text in Comparison.objects.filter(pk__in=ids).values_list(
            "pk", "external_id", "candidate_ids", "prompt__text"
        )
    }
    texts = dict(
        Candidate.objects.filter(pk__in={c for _, ids_, _ in comparisons.values() for c in ids_}).values_list(
            "pk", "text"
        )
    )
    confidence = dict(ComparisonConsensus.objects.filter(comparison_id__in=ids).values_list("comparison", "confidence"))
    names = dict(
        get_user_model()
        .objects.filter(pk__in={origin[PROMOTION].get("by") for _, _, origin in promoted})
        .values_list("pk", "username")
    )

    def item(pk: int, answer: dict, judgments: int) -> dict:
        external_id, _, prompt_text = comparisons[pk]
        return {
            "comparison_id": pk,
            "external_id": external_id,
            "prompt": prompt_text[:EXCERPT],
            "answer": answer,
            "answer_text": _answer_text(answer, texts),
            "judgments": judgments,
            "confidence": confidence.get(pk),
        }

    return {
        "min_judgments": minimum,
        "ready": [item(pk, _gold_answer(answer), n) for pk, answer, n in ready],
        "promoted": [
            {
                **item(pk, answer, judged.get(pk, 0)),
                "judgments_before": len(origin[PROMOTION].get("judgments", ())),
                "promoted_at": origin[PROMOTION].get("at"),
                "promoted_by": names.get(origin[PROMOTION].get("by")),
            }
            for pk, answer, origin in promoted
        ],
    }


def _answer_text(answer: dict, texts: dict[int, str]) -> str:
    if answer.get("tie"):
        return "a tie"
    if "ranking" in answer:
        return " > ".join(texts.get(c, "")[:EXCERPT] for c in answer["ranking"])
    return texts.get(answer.get("winner"), "")[:EXCERPT]


def _batches(rows, size: int):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
