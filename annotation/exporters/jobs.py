"""Exports as background jobs: :func:`export_job_create` (checked, queued), :func:`export_job_run` (on the
worker: writes the zip archive to the media storage, reporting progress), :func:`export_download_name`."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from django.core.files import File

from ..jobs import (
    JobCancelled,
    JobLost,
    export_jobs,
    job_claim,
    job_complete,
    job_error_message,
    job_finish,
    job_heartbeat,
    job_report,
)
from ..models import ExportJob, ExportStatus, Project
from .core import Export, ExportRequest, export_request_parse
from .formats import ZipTarget

PROGRESS_EVERY_SECONDS = 1.0

logger = logging.getLogger(__name__)


def export_job_create(*, project: Project, request: ExportRequest, created_by=None, base_url: str = "") -> ExportJob:
    return ExportJob.objects.create(
        project=project,
        base_url=base_url[:500],
        shape=request.shape,
        file_format=request.file_format,
        request=request.as_dict(),
        rows_total=request.filters.judgments(project).count(),
        created_by=created_by,
    )


def export_job_run(*, job_id: int, base_url: str = "") -> ExportJob | None:
    """Claim the job and run it to the end in this process; return it as it is afterwards.

    A background job (``annotation/jobs.py``): a duplicate message does nothing while the job runs elsewhere with a
    fresh heartbeat, and takes it over (writing the archive again from the start) once that went stale. The file
    is saved under a new name and kept only if the fenced write that marks the job succeeded lands; a cancelled
    or lost attempt deletes its file.
    """
    kind = export_jobs()
    attempt = job_claim(kind, job_id)
    if attempt is not None:
        with job_heartbeat(kind, job_id, attempt):
            _export_job_attempt(kind, job_id, attempt, base_url)
    return ExportJob.objects.filter(pk=job_id).first()  # None once deleted (with its project)


def _export_job_attempt(kind, job_id: int, attempt: int, base_url: str) -> None:
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    saved = dict(job.request)
    request = export_request_parse(
        shape=saved["shape"],
        file_format=saved["file_format"],
        filters=saved.get("filters"),
        options=saved.get("options"),
        media=saved.get("media"),
    )
    stored = None
    try:
        with tempfile.TemporaryDirectory(prefix="tandem-export-") as tmp:
            path = Path(tmp) / "export.zip"
            with open(path, "wb") as sink:
                export = Export(job.project, request, ZipTarget(sink), base_url=base_url or job.base_url)
                last = 0.0
                for done in export.run():
                    if time.monotonic() - last > PROGRESS_EVERY_SECONDS:
                        job_report(kind, job_id, attempt, rows_done=done)
                        last = time.monotonic()
            job_report(kind, job_id, attempt)  # still ours (and not cancelled) before storing the file
            with open(path, "rb") as f:
                job.file.save(export_download_name(job), File(f), save=False)
            stored = job.file.name
        numbers = export.stats.numbers()
        job_complete(
            kind,
            job_id,
            attempt,
            file=stored,
            size_bytes=job.file.size,
            rows_done=export.stats.judgments,
            numbers=numbers,
            message=f"{numbers['rows']} rows from {numbers['judgments']} judgments.",
        )
    except (JobLost, JobCancelled) as exc:
        if stored:
            job.file.storage.delete(stored)
        if isinstance(exc, JobCancelled):
            job_finish(kind, job_id, attempt, ExportStatus.CANCELLED, message="Cancelled; no file was kept.")
        else:
            logger.warning("export %s: attempt %s lost the job to another worker; its file is deleted", job_id, attempt)
    except Exception as exc:
        logger.exception("export %s failed", job_id)
        if stored:
            job.file.storage.delete(stored)
        job_finish(kind, job_id, attempt, ExportStatus.FAILED, error=f"The export stopped: {job_error_message(exc)}.")
        raise


def export_download_name(job_or_project, shape: str | None = None, file_format: str | None = None) -> str:
    if isinstance(job_or_project, ExportJob):
        project_id, shape, file_format = job_or_project.project_id, job_or_project.shape, job_or_project.file_format
    else:
        project_id = job_or_project.pk
    return f"tandem-project{project_id}-{shape}-{file_format}.zip"
