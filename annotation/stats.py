"""Read-side figures for a project's dashboard: counts, queue depth, throughput."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Assignment, AssignmentState, Comparison, ComparisonStatus, Judgment, Project


def project_stats(*, project: Project, days: int = 30) -> dict:
    now = timezone.now()
    comparisons = Comparison.objects.filter(project=project)
    by_status = dict(comparisons.values_list("status").annotate(n=Count("id")).order_by())
    work = comparisons.filter(is_gold=False, status=ComparisonStatus.OPEN).aggregate(
        open=Count("id"), judgments_remaining=Sum(F("wanted") - F("judged"))
    )
    judgments = Judgment.objects.filter(project=project)
    per_annotator = list(
        judgments.values("annotator_id", "annotator__username")
        .annotate(
            judgments=Count("id"),
            gold_judgments=Count("id", filter=Q(comparison__is_gold=True)),
            last_at=Max("created_at"),
        )
        .order_by("-judgments")
    )
    per_day = list(
        judgments.filter(created_at__gte=now - timedelta(days=days))
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(judgments=Count("id"))
        .order_by("day")
    )
    return {
        "comparisons": {
            "total": sum(by_status.values()),
            "open": by_status.get(ComparisonStatus.OPEN, 0),
            "done": by_status.get(ComparisonStatus.DONE, 0),
            "paused": by_status.get(ComparisonStatus.PAUSED, 0),
            "gold": comparisons.filter(is_gold=True).count(),
        },
        "queue": {
            "open_comparisons": work["open"] or 0,
            "judgments_remaining": work["judgments_remaining"] or 0,
            "live_leases": Assignment.objects.filter(
                project=project, state=AssignmentState.LEASED, expires_at__gt=now
            ).count(),
        },
        "judgments": {"total": judgments.count(), "per_annotator": per_annotator, "per_day": per_day},
        "prompts": project.prompts.count(),
        "candidates": project.candidates.count(),
    }
