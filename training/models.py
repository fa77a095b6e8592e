"""Training data: the model registry (``ModelVersion``) and training rounds (``Round``).

Models hold fields and constraints; the rules live in ``rounds.py`` (running a round) and ``registry.py``
(versions, the active one). Two invariants are kept by the database itself:

- at most one *active* version per (project, kind): a partial unique index;
- at most one *live* (queued or running) round per project: a partial unique index, so two admins (or an admin
  and the scheduler) starting a round at the same moment cannot both succeed.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.job_models import LIVE_JOB_STATUSES, BackgroundJob, JobStatus


class ModelKind(models.TextChoices):
    REWARD = "reward"  # holistic Bradley–Terry reward model (training.ml.reward)
    SPAN = "span"  # fine-grained per-segment, per-category penalties from span marks (training.ml.span_rewards)
    POLICY = "policy"


class VersionStatus(models.TextChoices):
    READY = "ready"  # complete artifact, evaluated; may be activated
    FAILED = "failed"  # found unusable after registration (e.g. the artifact was lost); never activated
    ARCHIVED = "archived"  # kept for the record; its artifact may have been deleted


class ModelVersion(models.Model):
    """One trained, evaluated and saved model of a project. Immutable once registered, except ``is_active``
    and ``status``."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="model_versions")
    kind = models.CharField(max_length=10, choices=ModelKind.choices)
    version = models.PositiveIntegerField(help_text="1, 2, … per project and kind.")
    base_model = models.CharField(max_length=500, help_text="Backbone id or path it was trained from.")
    # Relative to settings.TRAINING_ARTIFACTS_DIR (portable between machines that mount the folder elsewhere),
    # or absolute. Written atomically by the ML core: it always names a complete checkpoint.
    artifact_path = models.CharField(max_length=1000)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # {"eval": held-out metrics, "vs_previous": per-metric comparison with the parent, "pairs": pair counts,
    #  "train": steps, seconds, final loss}
    metrics = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="The round's config snapshot.")
    # The labels it saw: the ML core's snapshot id (a hash of the sorted judgment ids), their count, and the
    # highest judgment id the round read. The full id list is `judgment_ids.txt` beside the artifact.
    judgment_snapshot_id = models.CharField(max_length=64)
    judgment_count = models.PositiveIntegerField(default=0)
    judgment_max_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=VersionStatus.choices, default=VersionStatus.READY)
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "kind", "version"], name="modelversion_number_unique"),
            models.UniqueConstraint(
                fields=["project", "kind"], condition=Q(is_active=True), name="modelversion_one_active"
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(status="ready"), name="modelversion_active_is_ready"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} v{self.version} of project {self.project_id}"


RoundStatus = JobStatus
LIVE_ROUND_STATUSES = LIVE_JOB_STATUSES


class RoundTrigger(models.TextChoices):
    MANUAL = "manual"  # an admin, through the API or the UI
    SCHEDULE = "schedule"  # the scheduler (Celery beat): enough new judgments
    COMMAND = "command"  # `manage.py train_reward`, `manage.py run_round`, `manage.py flywheel`


class Round(BackgroundJob):
    """One turn of the loop for one project: a ``reward`` round trains the reward model; a ``policy`` round runs
    the whole loop (training/steps).

    A background job like an import or an export (``annotation/jobs.py``): status, owner, heartbeat, and
    ``attempts`` as the fencing token of the worker that runs it.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="rounds")
    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.REWARD)
    step = models.CharField(max_length=40, blank=True, help_text="What it is doing now, e.g. 'training'.")
    # The round's steps in order: [{"name", "status": pending|running|succeeded|failed|cancelled, "started_at",
    # "seconds"}], written with every progress report (training.progress).
    steps = models.JSONField(default=list, blank=True)
    progress = models.FloatField(default=0.0)
    config = models.JSONField(default=dict, blank=True, help_text="Snapshot of training.config.RoundConfig.")
    metrics = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    trigger = models.CharField(max_length=10, choices=RoundTrigger.choices, default=RoundTrigger.MANUAL)
    # The round trains on the judgments with id <= this (fixed when it is started), so a resumed attempt sees
    # the same labels and the scheduler counts "new" judgments from here.
    judgment_max_id = models.BigIntegerField(null=True, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(status__in=["queued", "running"]), name="round_one_live_per_project"
            ),
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1), name="round_progress_0_1"),
        ]
        indexes = [
            # The reaper's scan for running rounds whose worker went silent.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="round_running_by_heartbeat"),
            models.Index(fields=["project", "-id"], name="round_project_newest"),
        ]

    def __str__(self) -> str:
        return f"round {self.pk} of project {self.project_id} ({self.status})"
