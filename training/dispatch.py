"""Sending the training app's Celery tasks by name, so the services that queue work (rounds, scheduling) never
import the module that defines the tasks (which imports them): no import circle, and one place that knows the
names. ``config.celery``'s ``task_routes`` puts them on their queue."""

from __future__ import annotations

from django.db import transaction

from annotation.jobs import KINDS, JobKind, job_kind_register

ROUND_RUN = "training.tasks.round_run_task"


def round_run_send(round_id: int) -> None:
    """Queue the round's task once the current transaction commits.

    After commit: a worker must find the row, and a rolled-back start must send nothing. A failed send (broker
    down) is logged by Django, not raised: the round stays queued and ``rounds_reap_stale`` sends it again.
    """
    transaction.on_commit(lambda: send(ROUND_RUN, round_id), robust=True)


def send(name: str, *args) -> None:
    from config.celery import app

    app.send_task(name, args=list(args))


_ROUND_STEPS = {
    "claim": "starting",
    "resume": "resuming",
    "requeue": "queued (resuming)",
    "failed": "failed",
    "cancelled": "cancelled",
}


def round_jobs() -> JobKind:
    """Rounds as background jobs (``annotation/jobs.py``): claim, fencing, heartbeat, cancel and the sweep."""
    from .models import Round

    return KINDS.get("round") or job_kind_register(
        JobKind(
            name="round",
            model=Round,
            send=round_run_send,
            error_field="error",
            stale_setting="TRAINING_HEARTBEAT_STALE_SECONDS",
            attempts_setting="TRAINING_ROUND_MAX_ATTEMPTS",
            outcome_when_failed="Nothing was registered and the previous version stays active.",
            fields=lambda event: {"step": _ROUND_STEPS[event]} if event in _ROUND_STEPS else {},
        )
    )
