"""An annotator's own view of their work: what is left for them in each project
and how much they did today. Read-only; the queue (annotation.queue) decides what
is actually served."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from .models import (
    Assignment,
    AssignmentState,
    Comparison,
    ComparisonStatus,
    Judgment,
    Membership,
    PositionCheck,
    PositionCheckState,
    Project,
    Role,
)
from .quality.gold import own_gold_status

REMAINING_COUNT_CAP = 1000
"""``remaining`` is counted up to this many: past it the exact figure tells an annotator nothing, and an exact
count walks every open comparison of the project (≈ 0.6 s of Postgres at 1M comparisons, on each page load)."""


def work_overview(*, user, now: datetime | None = None) -> list[dict]:
    """One row per project the user works in (every project for superusers), newest project first:
    ``remaining`` counts the open, non-gold comparisons that still want judgments
    and that the user has neither answered nor skipped (a live lease of theirs
    counts as remaining), at most :data:`REMAINING_COUNT_CAP` (``remaining_capped``
    says so); ``done_today`` their judgments since midnight UTC, and the position checks they answered (to them a
    check is a task like any other: annotation.quality.position)."""
    now = now or timezone.now()
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    projects = Project.objects.all() if user.is_superuser else Project.objects.filter(pk__in=roles)
    projects = list(projects.order_by("-pk").only("pk", "name", "modality", "gold_settings"))
    project_ids = [p.pk for p in projects]
    answered = Assignment.objects.filter(
        comparison=OuterRef("pk"),
        annotator=user,
        state__in=(AssignmentState.SUBMITTED, AssignmentState.SKIPPED),
    )
    open_for_user = Comparison.objects.filter(
        status=ComparisonStatus.OPEN, is_gold=False, judged__lt=F("wanted")
    ).exclude(Exists(answered))
    # One bounded count per project (a LIMIT inside each): the open-queue index finds the first rows fast.
    remaining = {pid: open_for_user.filter(project_id=pid)[: REMAINING_COUNT_CAP + 1].count() for pid in project_ids}
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = dict(
        Judgment.objects.filter(annotator=user, project_id__in=project_ids, created_at__gte=midnight)
        .values_list("project_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    checks = (
        PositionCheck.objects.filter(
            annotator=user, project_id__in=project_ids, state=PositionCheckState.ANSWERED, answered_at__gte=midnight
        )
        .values_list("project_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for project_id, n in checks:
        today[project_id] = today.get(project_id, 0) + n
    gold = own_gold_status(user=user, projects=projects)
    return [
        {
            "project": p.pk,
            "name": p.name,
            "modality": p.modality,
            # Superusers act as admins of every project (annotation.access).
            "role": roles.get(p.pk, Role.ADMIN.value),
            "remaining": min(remaining[p.pk], REMAINING_COUNT_CAP),
            "remaining_capped": remaining[p.pk] > REMAINING_COUNT_CAP,
            "done_today": today.get(p.pk, 0),
            **gold[p.pk],
        }
        for p in projects
    ]
