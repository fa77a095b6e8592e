"""A researcher's reversible decision to keep an annotator's labels out of training, and the weights training reads.

Each exclusion and restoration is a row of ``AnnotatorExclusion`` (never deleted) and an entry in Django's admin
log (``LogEntry``, shown under "Recent actions" and on the project's history in the admin), so who did what, when
and why is on record.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Membership, Project
from ..quality_models import AnnotatorExclusion, AnnotatorQuality
from .audit import audit_log


class ExclusionError(ValueError):
    """The exclusion or restoration cannot be done; the message says why."""


def annotator_exclude(*, project: Project, annotator_id: int, actor, reason: str = "") -> AnnotatorExclusion:
    """Exclude the annotator's labels from this project's training from the next round on. Excluding someone
    already excluded returns the standing exclusion unchanged."""
    if not Membership.objects.filter(project=project, user_id=annotator_id).exists():
        raise ExclusionError(f"User {annotator_id} is not a member of this project.")
    with transaction.atomic():
        standing = AnnotatorExclusion.objects.filter(
            project=project, annotator_id=annotator_id, restored_at__isnull=True
        ).first()
        if standing is not None:
            return standing
        try:
            with transaction.atomic():
                exclusion = AnnotatorExclusion.objects.create(
                    project=project, annotator_id=annotator_id, excluded_by=actor, reason=reason
                )
        except IntegrityError:  # a concurrent exclusion won the race: its row stands
            return AnnotatorExclusion.objects.get(project=project, annotator_id=annotator_id, restored_at__isnull=True)
        audit_log(
            actor=actor, project=project, message=f"Excluded annotator {annotator_id} from training: {reason}".strip()
        )
    return exclusion


def annotator_restore(*, project: Project, annotator_id: int, actor) -> AnnotatorExclusion:
    """Undo the standing exclusion: the annotator's labels train again from the next round on."""
    with transaction.atomic():
        updated = AnnotatorExclusion.objects.filter(
            project=project, annotator_id=annotator_id, restored_at__isnull=True
        ).update(restored_at=timezone.now(), restored_by=actor)
        if not updated:
            raise ExclusionError(f"User {annotator_id} is not excluded in this project.")
        audit_log(actor=actor, project=project, message=f"Restored annotator {annotator_id} to training")
    return AnnotatorExclusion.objects.filter(project=project, annotator_id=annotator_id).latest("pk")


def excluded_annotator_ids(*, project_id: int) -> set[int]:
    return set(
        AnnotatorExclusion.objects.filter(project_id=project_id, restored_at__isnull=True).values_list(
            "annotator_id", flat=True
        )
    )


def training_weights(*, project_id: int, use_reliability: bool = True) -> dict:
    """What the next round's pair builder should weight each annotator by:
    ``{"weights": {annotator_id: w}, "excluded": [ids], "scheme": ...}``. Excluded annotators weigh 0; with
    ``use_reliability`` the others weigh their stored reliability weight (1.0 while none is computed)."""
    excluded = excluded_annotator_ids(project_id=project_id)
    weights: dict[int, float] = {}
    reliability_at = None
    if use_reliability:
        for annotator_id, weight in AnnotatorQuality.objects.filter(project_id=project_id).values_list(
            "annotator_id", "weight"
        ):
            if weight is not None:
                weights[annotator_id] = weight
        reliability_at = bool(weights)
    weights.update(dict.fromkeys(excluded, 0.0))
    scheme = "reliability" if reliability_at else "uniform"
    return {"weights": weights, "excluded": sorted(excluded), "scheme": scheme + (" + exclusions" if excluded else "")}
