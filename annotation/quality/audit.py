"""The audit trail of researchers' quality decisions: Django's admin log (``LogEntry``), on the project, so each
exclusion, resume and gold promotion shows under "Recent actions" and on the project's history in the admin."""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from ..models import Project


def audit_log(*, actor, project: Project, message: str) -> None:
    LogEntry.objects.create(
        user_id=actor.pk,
        content_type_id=ContentType.objects.get_for_model(Project).pk,
        object_id=str(project.pk),
        object_repr=str(project)[:200],
        action_flag=CHANGE,
        change_message=message,
    )
