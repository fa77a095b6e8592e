"""Reads of the stored quality figures, for exports and the API."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from ..quality_models import AnnotatorQuality, ProjectQuality
from .exclusions import training_weights


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
