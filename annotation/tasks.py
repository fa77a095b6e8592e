"""Celery tasks of the annotation app: thin wrappers that load ids and call a service."""

import logging

from celery import shared_task

from . import importers, jobs, queue

logger = logging.getLogger(__name__)


# Late ack and reject on worker loss (settings): a message whose worker died is delivered again, and the job's
# claim (annotation/jobs.py) decides whether it runs: a finished job or one running elsewhere with a fresh
# heartbeat is left alone, one whose worker went silent is taken over.
@shared_task(ignore_result=True, time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def import_run_task(job_id: int) -> None:
    importers.import_job_run(job_id=job_id)


@shared_task(ignore_result=True, time_limit=300)
def leases_expire_task() -> None:
    # Drain in batches so one run clears any backlog without one huge transaction.
    while queue.leases_expire() >= queue.EXPIRE_BATCH:
        pass


@shared_task(ignore_result=True, time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def export_run_task(job_id: int, base_url: str = "") -> None:
    from . import exporters

    exporters.export_job_run(job_id=job_id, base_url=base_url)


@shared_task(ignore_result=True, time_limit=600)
def planner_statistics_refresh_task() -> None:
    """ANALYZE the annotation tables that changed by a tenth since their last one (beat, every minute)."""
    from .planner_statistics import planner_statistics_refresh

    planner_statistics_refresh()


@shared_task(ignore_result=True, time_limit=120)
def jobs_reap_stale_task() -> None:
    """Imports, exports and rounds whose worker died: requeued, or failed with a reason (beat, every 30 s)."""
    jobs.jobs_reap_stale()


@shared_task(ignore_result=True, time_limit=1800, soft_time_limit=1740)
def quality_refresh_task(project_id: int | None = None) -> None:
    """Recompute label quality for one project (a researcher asked), or for every project with enough new
    judgments (the beat entry)."""
    from .models import Project
    from .quality.service import quality_due, quality_recompute

    if project_id is not None:
        if Project.objects.filter(pk=project_id).exists():
            quality_recompute(project_id=project_id)
        return
    for pk in Project.objects.values_list("pk", flat=True):
        if quality_due(project_id=pk):
            quality_recompute(project_id=pk)
