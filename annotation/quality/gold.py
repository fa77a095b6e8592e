"""Per-project gold thresholds: warn an annotator whose gold accuracy is clearly low, pause one whose accuracy is
clearly too low, and let a researcher resume them.

"Clearly" means the upper end of the 95 % Wilson interval of their gold accuracy is below the threshold, after at
least ``min_gold`` gold checks: a few unlucky answers do not pause anyone. Decisions read the stored figures
(``AnnotatorQuality``, recomputed by the quality task), never the judgments per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from preference.stats import wilson_interval

from ..models import Project
from ..quality_models import AnnotatorPause, AnnotatorQuality
from .audit import audit_log

_KEYS = {"warn_below", "pause_below", "min_gold", "show_own_accuracy", "promote_min_judgments"}


class GoldSettingsError(ValueError):
    """The gold settings are invalid; ``errors`` maps each key to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class GoldSettings:
    warn_below: float | None = None
    pause_below: float | None = None
    min_gold: int = 10
    show_own_accuracy: bool = False
    # Judgments, all agreeing, a comparison needs before a researcher may promote it to gold (quality.promotion).
    promote_min_judgments: int = 3

    def to_json(self) -> dict:
        return {
            "warn_below": self.warn_below,
            "pause_below": self.pause_below,
            "min_gold": self.min_gold,
            "show_own_accuracy": self.show_own_accuracy,
            "promote_min_judgments": self.promote_min_judgments,
        }


def parse_gold_settings(data) -> GoldSettings:
    """Validate a project's ``gold_settings`` (empty or missing keys: thresholds off, accuracy hidden)."""
    if data in (None, ""):
        data = {}
    if not isinstance(data, dict):
        raise GoldSettingsError({"gold_settings": "Must be an object."})
    errors = {
        key: "Unknown setting; use warn_below, pause_below, min_gold, show_own_accuracy or promote_min_judgments."
        for key in data.keys() - _KEYS
    }
    for key in ("warn_below", "pause_below"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1):
            errors[key] = "Must be a gold accuracy in (0, 1], or null for off."
    min_gold = data.get("min_gold", 10)
    if isinstance(min_gold, bool) or not isinstance(min_gold, int) or min_gold < 1:
        errors["min_gold"] = "Must be a whole number of gold checks, at least 1."
    if not isinstance(data.get("show_own_accuracy", False), bool):
        errors["show_own_accuracy"] = "Must be true or false."
    promote = data.get("promote_min_judgments", 3)
    if isinstance(promote, bool) or not isinstance(promote, int) or promote < 2:
        errors["promote_min_judgments"] = "Must be a whole number of judgments, at least 2."
    warn, pause = data.get("warn_below"), data.get("pause_below")
    if not errors and warn is not None and pause is not None and pause > warn:
        errors["pause_below"] = f"Must not be above warn_below ({warn}): annotators are warned before they are paused."
    if errors:
        raise GoldSettingsError(errors)
    return GoldSettings(
        warn_below=None if warn is None else float(warn),
        pause_below=None if pause is None else float(pause),
        min_gold=min_gold,
        show_own_accuracy=data.get("show_own_accuracy", False),
        promote_min_judgments=promote,
    )


def gold_verdict(settings: GoldSettings, *, gold_correct: float, gold_judged: int) -> tuple[str, str]:
    """``("ok" | "warn" | "pause", message)`` for one annotator's gold figures under the project's settings."""
    if gold_judged < settings.min_gold or gold_judged == 0:
        return "ok", ""
    high = wilson_interval(gold_correct, gold_judged)[1]
    for level, threshold in (("pause", settings.pause_below), ("warn", settings.warn_below)):
        if threshold is not None and high < threshold:
            return level, (
                f"Your answers on gold checks are right {gold_correct / gold_judged:.0%} of the time over "
                f"{gold_judged} check{'' if gold_judged == 1 else 's'} (at most {high:.0%} at 95 % confidence), "
                f"below this project's "
                f"{threshold:.0%} {level} threshold."
                + (" A researcher of the project has to resume you." if level == "pause" else "")
            )
    return "ok", ""


def pause_reason_sql(*, project: str, annotator: str) -> str:
    """A scalar subquery: why ``annotator`` is paused in ``project`` (SQL expressions), or NULL. The claim statement
    embeds it (annotation.queue), so a paused annotator is refused in the same round trip."""
    return f"""(SELECT ap.reason FROM annotation_annotatorpause ap
    WHERE ap.project_id = {project} AND ap.annotator_id = {annotator} AND ap.resumed_at IS NULL)"""


def gold_pauses_apply(*, project: Project) -> list[AnnotatorPause]:
    """Pause every annotator whose stored figures fall below the pause threshold and who is not paused yet. After a
    researcher resumed someone, they get ``min_gold`` more gold checks before they can be paused again."""
    settings = parse_gold_settings(project.gold_settings)
    if settings.pause_below is None:
        return []
    standing = set(
        AnnotatorPause.objects.filter(project=project, resumed_at__isnull=True).values_list("annotator_id", flat=True)
    )
    last_resumed: dict[int, int] = {}
    for annotator_id, judged in (
        AnnotatorPause.objects.filter(project=project, resumed_at__isnull=False)
        .order_by("paused_at", "pk")
        .values_list("annotator_id", "gold_judged")
    ):
        last_resumed[annotator_id] = judged
    paused = []
    for q in AnnotatorQuality.objects.filter(project=project).exclude(annotator_id__in=standing):
        level, message = gold_verdict(settings, gold_correct=q.gold_correct, gold_judged=q.gold_judged)
        grace_until = last_resumed.get(q.annotator_id, -settings.min_gold) + settings.min_gold
        if level == "pause" and q.gold_judged >= grace_until:
            paused.append(
                AnnotatorPause(project=project, annotator_id=q.annotator_id, reason=message, gold_judged=q.gold_judged)
            )
    return AnnotatorPause.objects.bulk_create(paused, ignore_conflicts=True)


class PauseError(ValueError):
    """The annotator cannot be resumed; the message says why."""


def annotator_resume(*, project: Project, annotator_id: int, actor) -> AnnotatorPause:
    """Lift the annotator's standing pause: ``next`` serves them again. Recorded in the admin log."""
    with transaction.atomic():
        updated = AnnotatorPause.objects.filter(
            project=project, annotator_id=annotator_id, resumed_at__isnull=True
        ).update(resumed_at=timezone.now(), resumed_by=actor)
        if not updated:
            raise PauseError(f"User {annotator_id} is not paused in this project.")
        audit_log(actor=actor, project=project, message=f"Resumed annotator {annotator_id} after a gold-accuracy pause")
    return AnnotatorPause.objects.filter(project=project, annotator_id=annotator_id).latest("pk")


def own_gold_status(*, user, projects: list[Project]) -> dict[int, dict]:
    """Per project, what the annotator may see of their own gold standing: ``warning`` (text or None), ``paused``
    (the reason or None) and ``gold`` (their accuracy and interval, only where the project shows it)."""
    ids = [p.pk for p in projects]
    figures = {q.project_id: q for q in AnnotatorQuality.objects.filter(annotator=user, project_id__in=ids)}
    pauses = dict(
        AnnotatorPause.objects.filter(annotator=user, project_id__in=ids, resumed_at__isnull=True).values_list(
            "project_id", "reason"
        )
    )
    out = {}
    for p in projects:
        settings = parse_gold_settings(p.gold_settings)
        q = figures.get(p.pk)
        warning, gold = None, None
        if q is not None and q.gold_judged:
            level, message = gold_verdict(settings, gold_correct=q.gold_correct, gold_judged=q.gold_judged)
            warning = message if level != "ok" and p.pk not in pauses else None
            if settings.show_own_accuracy:
                low, high = wilson_interval(q.gold_correct, q.gold_judged)
                gold = {"judged": q.gold_judged, "accuracy": q.gold_correct / q.gold_judged, "low": low, "high": high}
        out[p.pk] = {"gold_warning": warning, "paused": pauses.get(p.pk), "gold": gold}
    return out
