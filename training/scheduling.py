"""The scheduler: start a round for every project that has enough new judgments, or whose last round is older
than its period (Celery beat).

A project takes part when its ``training_settings`` has ``"schedule": true``; its rounds are policy rounds when
the settings name a ``policy``, else reward rounds. "New" judgments are the non-gold judgments with an id above
the cut-off of the project's last round that was not cancelled (or, before any round, of the active version; else
all of them); in a policy project after its first successful policy round, only the judgments of that round's
pushed comparisons count — the labels the loop asked for. ``schedule_every_hours`` > 0 also starts a round when
the last one was started that long ago. A failed round therefore also "uses up" the judgments it saw: the
scheduler tries again only after ``min_new_judgments`` more arrive, instead of re-running a failing round every
tick. An admin can always start one by hand.

Each tick first recovers rounds whose worker died (``rounds.rounds_reap_stale``), so one beat entry keeps the
whole training side moving.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from annotation.models import Judgment, Modality, Project

from . import registry
from .config import ConfigInvalid, round_config_build
from .models import LIVE_ROUND_STATUSES, ModelKind, Round, RoundStatus, RoundTrigger
from .rounds import NothingToTrain, RoundAlreadyRunning, round_start, rounds_reap_stale

logger = logging.getLogger(__name__)


def judgments_since(*, project_id: int) -> int:
    """The judgment id the next scheduled round counts from (0 before any round or version)."""
    last_round = (
        Round.objects.filter(project_id=project_id, judgment_max_id__isnull=False)
        .exclude(status=RoundStatus.CANCELLED)
        .order_by("-id")
        .values_list("judgment_max_id", flat=True)
        .first()
    )
    if last_round is not None:
        return last_round
    active = registry.active_version(project_id=project_id)
    return (active.judgment_max_id or 0) if active else 0


def new_judgment_count(*, project_id: int, since_id: int, limit: int, of_round: int | None = None) -> int:
    """Non-gold judgments after ``since_id`` (of the comparisons round ``of_round`` pushed, when given), counted up
    to ``limit`` (the slice bounds the scan: the scheduler only needs to know whether the threshold is reached)."""
    qs = Judgment.objects.filter(project_id=project_id, pk__gt=since_id, comparison__is_gold=False)
    if of_round is not None:
        qs = qs.filter(comparison__origin__round=of_round)
    return qs.values("pk")[:limit].count()


def judgments_counted(*, project: Project, policy: bool, limit: int) -> tuple[int, int]:
    """The new judgments the project's next round counts (up to ``limit``) and the id they count from: in a policy
    project after its first successful policy round, only those of that round's pushed comparisons."""
    since = judgments_since(project_id=project.pk)
    last_policy = None
    if policy:
        last_policy = (
            Round.objects.filter(project=project, kind=ModelKind.POLICY, status=RoundStatus.SUCCEEDED)
            .order_by("-id")
            .values_list("pk", flat=True)
            .first()
        )
    return new_judgment_count(project_id=project.pk, since_id=since, limit=limit, of_round=last_policy), since


def due(*, project: Project, config) -> str | None:
    """Why the project's next round should start now, or None."""
    new, since = judgments_counted(project=project, policy=bool(config.policy), limit=config.min_new_judgments)
    if new >= config.min_new_judgments:
        return f"{new} new judgments since #{since}"
    if config.schedule_every_hours > 0:
        last = Round.objects.filter(project=project).order_by("-id").values_list("created_at", flat=True).first()
        if last is None or timezone.now() - last >= timedelta(hours=config.schedule_every_hours):
            return f"no round for {config.schedule_every_hours:g} hours"
    return None


def rounds_schedule(*, projects: list[int] | None = None, enqueue: bool = True) -> list[Round]:
    """Reap dead rounds, then start a round in each scheduled project (of ``projects``, when given) that is due.
    Returns the new rounds; ``enqueue=False`` leaves them queued for the caller to run (the simulated flywheel)."""
    rounds_reap_stale()
    started = []
    scheduled = Project.objects.filter(training_settings__schedule=True, modality__in=[Modality.TEXT, Modality.IMAGE])
    if projects is not None:
        scheduled = scheduled.filter(pk__in=projects)
    for project in scheduled.order_by("pk"):
        try:
            config = round_config_build(project_settings=project.training_settings)
        except ConfigInvalid as exc:
            logger.warning("project %s: training settings are invalid, not scheduling: %s", project.pk, exc)
            continue
        if Round.objects.filter(project=project, status__in=LIVE_ROUND_STATUSES).exists():
            continue
        reason = due(project=project, config=config)
        if reason is None:
            continue
        try:
            started.append(round_start(project=project, trigger=RoundTrigger.SCHEDULE, enqueue=enqueue))
        except (RoundAlreadyRunning, NothingToTrain, ConfigInvalid) as exc:
            # RoundAlreadyRunning: an admin started one between our check and our insert (the index decided).
            logger.info("project %s: no scheduled round: %s", project.pk, exc)
            continue
        logger.info("project %s: %s; started round %s", project.pk, reason, started[-1].pk)
    return started
