"""Exports as background jobs: :func:`export_job_create` (checked, queued), :func:`export_job_run` (on the
worker: writes the zip archive to the media storage, reporting progress), :func:`export_download_name`."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from django.core.files import File
from django.db.models import Q
from django.utils import timezone

from ..models import ExportJob, ExportStatus, Project
from .core import Export, ExportRequest, export_request_parse
from .formats import ZipTarget

PROGRESS_EVERY_SECONDS = 1.0


def export_job_create(*, project: Project, request: ExportRequest, created_by=None) -> ExportJob:
    return ExportJob.objects.create(
        project=project,
        shape=request.shape,
        file_format=request.file_format,
        request=request.as_dict(),
        rows_total=request.filters.judgments(project).count(),
        created_by=created_by,
    )


def export_job_run(*, job_id: int, base_url: str = "") -> ExportJob:
    """Run a queued job (claimed with a conditional update, so a redelivered message does not run it twice)."""
    claimed = ExportJob.objects.filter(Q(status=ExportStatus.QUEUED), pk=job_id).update(
        status=ExportStatus.RUNNING, started_at=timezone.now(), rows_done=0, message=""
    )
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        return job
    saved = dict(job.request)
    request = export_request_parse(
        shape=saved["shape"],
        file_format=saved["file_format"],
        filters=saved.get("filters"),
        options=saved.get("options"),
        media=saved.get("media"),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="tandem-export-") as tmp:
            path = Path(tmp) / "export.zip"
            with open(path, "wb") as sink:
                export = Export(job.project, request, ZipTarget(sink), base_url=base_url)
                last = 0.0
                for done in export.run():
                    if time.monotonic() - last > PROGRESS_EVERY_SECONDS:
                        ExportJob.objects.filter(pk=job.pk).update(rows_done=done)
                        last = time.monotonic()
            with open(path, "rb") as f:
                job.file.save(export_download_name(job), File(f), save=False)
            job.size_bytes = path.stat().st_size
    except Exception as exc:
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, finished_at=timezone.now(), message=f"The export stopped: {exc}"
        )
        raise
    numbers = export.stats.numbers()
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.SUCCEEDED,
        finished_at=timezone.now(),
        file=job.file.name,
        size_bytes=job.size_bytes,
        rows_done=export.stats.judgments,
        numbers=numbers,
        message=f"{numbers['rows']} rows from {numbers['judgments']} judgments.",
    )
    job.refresh_from_db()
    return job


def export_download_name(job_or_project, shape: str | None = None, file_format: str | None = None) -> str:
    if isinstance(job_or_project, ExportJob):
        project_id, shape, file_format = job_or_project.project_id, job_or_project.shape, job_or_project.file_format
    else:
        project_id = job_or_project.pk
    return f"tandem-project{project_id}-{shape}-{file_format}.zip"
