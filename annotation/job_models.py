"""The fields every background job's row carries (imports, exports, training rounds): status, the fencing
token, the owner and its heartbeat. The lifecycle that writes them is ``annotation/jobs.py``."""

from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class BackgroundJob(models.Model):
    """``attempts`` is the fencing token: each claim increments it and every later write of the worker is
    conditional on the value it claimed, so a worker presumed dead (and replaced) can change nothing."""

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Attempts made before the last retry: the attempt limit counts from here, while ``attempts`` itself only
    # ever grows (a fencing token that went back could let a zombie worker write again).
    attempt_floor = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
