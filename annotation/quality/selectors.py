"""Reads of the stored quality figures, for exports and the API."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from preference.stats import wilson_interval

from ..models import Judgment
from ..quality_models import AnnotatorExclusion, AnnotatorPause, AnnotatorQuality, ProjectQuality
from .exclusions import training_weights
from .service import MIN_SHARED, MIN_WEEK_UNITS

DETAIL_STATISTICS = ("cohen_kappa_pairs", "over_time")
"""Statistics with one entry per annotator pair or per week: served by :func:`agreement_detail`, not in the table
the dashboard polls."""


def annotator_quality_for_export(*, project_id: int) -> dict[str, tuple[float, float | None]]:
    """Username → (the weight reward training gives their judgments, their estimated reliability)."""
    weights = training_weights(project_id=project_id)["weights"]
    reliability = dict(
        AnnotatorQuality.objects.filter(project_id=project_id).values_list("annotator_id", "reliability")
    )
    ids = set(weights) | set(reliability)
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    return {names[pk]: (weights.get(pk, 1.0), reliability.get(pk)) for pk in ids if pk in names}


def project_quality_summary(*, project_id: int) -> dict | None:
    """The project's agreement statistics as last computed, with when and from how many judgments; None before."""
    quality = ProjectQuality.objects.filter(project_id=project_id).first()
    if quality is None or quality.computed_at is None:
        return None
    return {
        "computed_at": quality.computed_at.isoformat(timespec="seconds"),
        "judgments": quality.judgment_count,
        **quality.statistics,
    }


def quality_table(*, project_id: int) -> dict:
    """The researcher's view: project statistics, and one row per annotator with their figures, gold accuracy and
    position-check consistency with their 95 % Wilson intervals, flags and exclusion. Figures are as of the last
    computation (``computed_at``); ``new_judgments`` says how many arrived since."""
    quality = ProjectQuality.objects.filter(project_id=project_id).first()
    standing = {
        e.annotator_id: e
        for e in AnnotatorExclusion.objects.filter(project_id=project_id, restored_at__isnull=True).select_related(
            "excluded_by"
        )
    }
    pauses = {p.annotator_id: p for p in AnnotatorPause.objects.filter(project_id=project_id, resumed_at__isnull=True)}
    rows = []
    figures = AnnotatorQuality.objects.filter(project_id=project_id).select_related("annotator")
    seen = set()
    for q in figures.order_by("-judgments", "annotator_id"):
        seen.add(q.annotator_id)
        rows.append(
            _row(q.annotator_id, q.annotator.username, q, standing.get(q.annotator_id), pauses.get(q.annotator_id))
        )
    missing = set(standing) - seen
    if missing:
        names = dict(get_user_model().objects.filter(pk__in=missing).values_list("pk", "username"))
        rows += [_row(pk, names.get(pk, ""), None, standing[pk], pauses.get(pk)) for pk in sorted(missing)]
    since = quality.judgment_max_id if quality else 0
    return {
        "computed_at": quality.computed_at if quality else None,
        "judgment_count": quality.judgment_count if quality else 0,
        "new_judgments": Judgment.objects.filter(project_id=project_id, pk__gt=since).count(),
        "statistics": {k: v for k, v in (quality.statistics if quality else {}).items() if k not in DETAIL_STATISTICS},
        "annotators": rows,
    }


def agreement_detail(*, project_id: int) -> dict:
    """Agreement over time (Krippendorff's alpha of choices per week) and between each two annotators (Cohen's
    kappa with the number of comparisons they share), as last computed. Kappa is None below ``min_shared`` shared
    comparisons and a week's alpha None below ``min_week_comparisons`` comparisons judged more than once."""
    quality = ProjectQuality.objects.filter(project_id=project_id).first()
    statistics = quality.statistics if quality else {}
    pairs = statistics.get("cohen_kappa_pairs", [])
    ids = set(AnnotatorQuality.objects.filter(project_id=project_id).values_list("annotator_id", flat=True))
    ids |= {pk for pair in pairs for pk in pair["annotators"]}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    return {
        "computed_at": quality.computed_at if quality else None,
        "min_shared": MIN_SHARED,
        "min_week_comparisons": MIN_WEEK_UNITS,
        "over_time": statistics.get("over_time", []),
        "annotators": [
            {"annotator_id": pk, "username": name} for pk, name in sorted(names.items(), key=lambda kv: kv[1])
        ],
        "pairs": [
            {
                "first": first,
                "second": second,
                "kappa": pair["kappa"],
                "shared": pair["shared"],
                "agreement": pair["agreement"],
            }
            for pair in pairs
            for first, second in [pair["annotators"]]
            if first in names and second in names
        ],
    }


def _row(
    annotator_id: int,
    username: str,
    q: AnnotatorQuality | None,
    exclusion: AnnotatorExclusion | None,
    pause: AnnotatorPause | None,
) -> dict:
    gold_accuracy = gold_low = gold_high = None
    if q is not None and q.gold_judged:
        gold_accuracy = q.gold_correct / q.gold_judged
        gold_low, gold_high = wilson_interval(q.gold_correct, q.gold_judged)
    consistency = consistency_low = consistency_high = None
    if q is not None and q.position_checks:
        consistency = q.position_consistent / q.position_checks
        consistency_low, consistency_high = wilson_interval(q.position_consistent, q.position_checks)
    return {
        "annotator_id": annotator_id,
        "username": username,
        "judgments": q.judgments if q else 0,
        "median_time_ms": q.median_time_ms if q else None,
        "gold_judged": q.gold_judged if q else 0,
        "gold_accuracy": gold_accuracy,
        "gold_accuracy_low": gold_low,
        "gold_accuracy_high": gold_high,
        "reliability": q.reliability if q else None,
        "weight": q.weight if q else None,
        "agreement_with_consensus": q.agreement_with_consensus if q else None,
        "agreement_with_others": q.agreement_with_others if q else None,
        "left_share": q.left_share if q else None,
        "longer_share": q.longer_share if q else None,
        "position_checks": q.position_checks if q else 0,
        "position_consistency": consistency,
        "position_consistency_low": consistency_low,
        "position_consistency_high": consistency_high,
        "flags": q.flags if q else [],
        "excluded": exclusion is not None,
        "excluded_at": exclusion.excluded_at if exclusion else None,
        "excluded_by": exclusion.excluded_by.username if exclusion and exclusion.excluded_by else None,
        "exclusion_reason": exclusion.reason if exclusion else "",
        "paused": pause is not None,
        "paused_at": pause.paused_at if pause else None,
        "pause_reason": pause.reason if pause else "",
    }
