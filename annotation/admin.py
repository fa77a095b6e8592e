from django.contrib import admin

from . import models


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "modality", "overlap", "gold_share", "created_at"]
    search_fields = ["name"]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role"]
    raw_id_fields = ["project", "user"]


@admin.register(models.Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "split"]
    list_filter = ["split"]
    search_fields = ["external_id", "text"]
    raw_id_fields = ["project"]


@admin.register(models.Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "source", "mime_type"]
    list_filter = ["source"]
    search_fields = ["external_id"]
    raw_id_fields = ["project", "prompt"]

    def has_delete_permission(self, request, obj=None):
        # Comparisons list candidates by id (Comparison.candidate_ids, no foreign
        # key): a candidate goes only with its prompt, which takes its comparisons.
        return False


@admin.register(models.Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "status", "priority", "wanted", "judged", "leased", "is_gold"]
    list_filter = ["status", "is_gold"]
    search_fields = ["external_id"]
    raw_id_fields = ["project", "prompt"]
    # The counters are kept by the queue's services; editing them by hand breaks its invariants.
    readonly_fields = ["judged", "leased", "candidate_ids"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "annotator", "state", "expires_at"]
    list_filter = ["state"]
    raw_id_fields = ["project", "comparison", "annotator"]


class SpanMarkInline(admin.TabularInline):
    model = models.SpanMark
    raw_id_fields = ["candidate"]
    extra = 0


@admin.register(models.Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "annotator", "winner", "tie", "strength", "created_at"]
    raw_id_fields = ["project", "comparison", "annotator", "winner"]
    inlines = [SpanMarkInline]


@admin.register(models.ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "file_format", "status", "rows_done", "rows_total", "created_at"]
    list_filter = ["status", "kind"]
    raw_id_fields = ["project", "created_by"]
