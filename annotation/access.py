"""Who may do what in a project (DESIGN §8), enforced by every view.

Roles rank annotator < researcher < admin; each includes the rights below it.
Django superusers act as admins of every project. A user who is not a member
of a project gets 404 for it, not 403, so a project's existence is not leaked.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework.exceptions import PermissionDenied

from .models import ROLE_RANK, Membership, Project, Role


def project_role(*, user, project_id: int) -> Role | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    role = Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()
    return Role(role) if role else None


def project_for(*, user, project_id: int, at_least: Role = Role.ANNOTATOR) -> tuple[Project, Role]:
    """The project and the user's role in it, or an HTTP error: 404 for non-members,
    403 for members whose role is too low. One query."""
    project, role = None, None
    if user.is_authenticated and user.is_superuser:
        project, role = Project.objects.filter(pk=project_id).first(), Role.ADMIN
    elif user.is_authenticated:
        membership = Membership.objects.select_related("project").filter(project_id=project_id, user=user).first()
        if membership is not None:
            project, role = membership.project, Role(membership.role)
    if project is None:
        raise Http404("No project with this id that you are a member of.")
    role_check(role=role, at_least=at_least)
    return project, role


def role_check(*, role: Role | None, at_least: Role) -> None:
    """403 unless ``role`` is at least ``at_least`` (404 when not a member at all)."""
    if role is None:
        raise Http404("No project with this id that you are a member of.")
    if ROLE_RANK[role] < ROLE_RANK[at_least]:
        raise PermissionDenied(f"This needs the {at_least.value} role in this project; you are {role.value}.")


def projects_visible(*, user):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def can_create_projects(user) -> bool:
    return user.is_superuser or user.has_perm("annotation.add_project")
