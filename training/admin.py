from django.contrib import admin

from . import models


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "version", "status", "is_active", "judgment_count", "created_at"]
    list_filter = ["kind", "status", "is_active"]
    search_fields = ["base_model", "artifact_path", "judgment_snapshot_id"]
    raw_id_fields = ["project", "parent"]
    # The registry's invariants (one active per project and kind, immutable artifacts) are kept by
    # training.registry; change activation through the API so the project lock is taken.
    readonly_fields = [
        "project",
        "kind",
        "version",
        "base_model",
        "artifact_path",
        "parent",
        "metrics",
        "config",
        "judgment_snapshot_id",
        "judgment_count",
        "judgment_max_id",
        "is_active",
        "activated_at",
        "created_at",
    ]


@admin.register(models.Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "step", "progress", "trigger", "attempts", "created_at"]
    list_filter = ["status", "kind", "trigger"]
    raw_id_fields = ["project", "triggered_by", "model_version"]
    readonly_fields = [
        "project",
        "kind",
        "status",
        "step",
        "progress",
        "config",
        "metrics",
        "log_tail",
        "error",
        "triggered_by",
        "trigger",
        "judgment_max_id",
        "cancel_requested",
        "attempts",
        "worker",
        "model_version",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ]
