"""The export job's table. Kept apart from ``models.py`` (imported at its end) so the export work merges
without touching the core models; Django sees it as an ``annotation`` model all the same."""

from django.conf import settings
from django.db import models

from .job_models import BackgroundJob, JobStatus

ExportStatus = JobStatus


class ExportJob(BackgroundJob):
    """One export run on the worker: what was asked, its progress, and the zip archive it produced (a background
    job: ``annotation/jobs.py``)."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="exports")
    shape = models.CharField(max_length=12)  # see annotation.exporters.SHAPES
    file_format = models.CharField(max_length=10)  # see annotation.exporters.FORMATS
    # The checked request: filters, shape options, media mode (recorded verbatim in the dataset card).
    request = models.JSONField(default=dict)
    rows_total = models.PositiveIntegerField(null=True, blank=True, help_text="Judgments selected (before agreement).")
    rows_done = models.PositiveIntegerField(default=0, help_text="Judgments written so far.")
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    numbers = models.JSONField(default=dict, blank=True)  # the dataset card's numbers
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # The site's address when it was asked for, for media links in the data (a resent task has only the id).
    base_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The sweep's scan for running jobs whose worker went silent (annotation/jobs.py).
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="exportjob_status_heartbeat")]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.shape}, {self.file_format}, {self.status})"
