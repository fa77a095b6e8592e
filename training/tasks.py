"""Celery tasks of the training app: thin wrappers that pass ids to a service.

``config.celery`` routes ``training.tasks.*`` to the ``gpu`` queue, except the scheduler's task, which only reads
counts and sends messages and so is routed to ``default`` by name (routing lives in ``task_routes``: Celery
deprecates the per-task ``queue`` attribute).
Run GPU workers with one process per GPU: ``celery -A config worker -Q gpu --concurrency 1``.
"""

import logging

from celery import shared_task
from django.conf import settings

from . import rounds, scheduling

logger = logging.getLogger(__name__)

# Must stay below the broker's visibility timeout (settings.CELERY_VISIBILITY_TIMEOUT, 6 h by default), or Redis
# hands a still-running round to a second worker — which the claim in rounds.round_run would then ignore.
ROUND_TIME_LIMIT = getattr(settings, "TRAINING_ROUND_TIME_LIMIT", 5 * 3600)


@shared_task(
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The soft limit raises inside the training loop, so the round fails with a message; the hard one kills.
    soft_time_limit=ROUND_TIME_LIMIT,
    time_limit=ROUND_TIME_LIMIT + 300,
)
def round_run_task(round_id: int) -> None:
    rounds.round_run(round_id=round_id)


@shared_task(ignore_result=True, time_limit=300)
def rounds_schedule_task() -> None:
    scheduling.rounds_schedule()
