"""Celery tasks of the annotation app: thin wrappers that load ids and call a service."""

import logging

from celery import shared_task

from . import importers, queue
from .models import ImportJob, ImportStatus

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def import_run_task(job_id: int) -> None:
    # A redelivered message for a job that already finished, or one deleted with
    # its project, must not run the import again.
    status = ImportJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
    if status is None or status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED):
        logger.info("import job %s is %s; nothing to do", job_id, status or "gone")
        return
    importers.import_job_run(job_id=job_id)


@shared_task(ignore_result=True, time_limit=300)
def leases_expire_task() -> None:
    # Drain in batches so one run clears any backlog without one huge transaction.
    while queue.leases_expire() >= queue.EXPIRE_BATCH:
        pass


@shared_task(ignore_result=True, time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def export_run_task(job_id: int, base_url: str = "") -> None:
    from . import exporters
    from .models import ExportJob, ExportStatus

    status = ExportJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
    if status != ExportStatus.QUEUED:
        logger.info("export job %s is %s; nothing to do", job_id, status or "gone")
        return
    exporters.export_job_run(job_id=job_id, base_url=base_url)


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
