"""Projects and their members: the writes, each a service function."""

from __future__ import annotations

from django.db import transaction

from .models import Comparison, Membership, Project, Role
from .schema import SchemaError, parse_schema


class LastAdmin(ValueError):
    pass


@transaction.atomic
def project_create(*, created_by, name: str, schema: dict | None = None, **fields) -> Project:
    """Create a project; its creator becomes its first admin."""
    parsed = parse_schema(schema or {})
    project = Project.objects.create(name=name, schema=parsed.to_json(), created_by=created_by, **fields)
    Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    return project


def project_update(*, project: Project, **fields) -> Project:
    if "schema" in fields:
        parsed = parse_schema(fields["schema"])
        old_arity = parse_schema(project.schema).arity
        if parsed.arity != old_arity and Comparison.objects.filter(project=project).exists():
            raise SchemaError({"schema.arity": ["Cannot change the arity of a project that already has comparisons."]})
        fields["schema"] = parsed.to_json()
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()
    return project


def membership_set(*, project: Project, user, role: Role) -> Membership:
    """Add the user to the project, or change their role."""
    with transaction.atomic():
        membership, _ = Membership.objects.select_for_update().get_or_create(
            project=project, user=user, defaults={"role": role}
        )
        if membership.role != role:
            _ensure_another_admin(project, membership)
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def membership_remove(*, membership: Membership) -> None:
    with transaction.atomic():
        _ensure_another_admin(membership.project, membership)
        membership.delete()


def _ensure_another_admin(project: Project, membership: Membership) -> None:
    if membership.role != Role.ADMIN:
        return
    others = Membership.objects.select_for_update().filter(project=project, role=Role.ADMIN).exclude(pk=membership.pk)
    if not others.exists():
        raise LastAdmin("A project must keep at least one admin; add another admin first.")
