"""Who may do what in a project (DESIGN §8), enforced by every view.

Roles rank annotator < researcher < admin; each includes the rights below it.
Django superusers act as admins of every project. A user who is not a member
of a project gets 404 for it, not 403, so a project's existence is not leaked.
"""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.http import Http404
from rest_framework.exceptions import PermissionDenied

from .models import ROLE_RANK, Comparison, Membership, Project, Role


def project_for(*, user, project_id: int, at_least: Role = Role.ANNOTATOR) -> tuple[Project, Role]:
    """The project and the user's role in it, or an HTTP error: 404 for non-members,
    403 for members whose role is too low. One query."""
    project, role = None, None
    if user.is_authenticated and user.is_superuser:
        project, role = Project.objects.filter(pk=project_id).first(), Role.ADMIN
    elif user.is_authenticated:
        # [:1] rather than .first(): no ORDER BY on this per-request query.
        for membership in Membership.objects.select_related("project").filter(project_id=project_id, user=user)[:1]:
            project, role = membership.project, Role(membership.role)
    if project is None:
        raise Http404("No project with this id that you are a member of.")
    if ROLE_RANK[role] < ROLE_RANK[at_least]:
        raise PermissionDenied(f"This needs the {at_least.value} role in this project; you are {role.value}.")
    return project, role


def comparison_with_role(*, comparison_id: int, user) -> Comparison | None:
    """The comparison (project joined) with ``caller_role`` set to the user's role in
    its project, or None as role for non-members. One query: this is on the
    labelling hot path."""
    qs = Comparison.objects.select_related("project").filter(pk=comparison_id)
    if not user.is_superuser:
        role = Membership.objects.filter(project_id=OuterRef("project_id"), user=user).values("role")[:1]
        qs = qs.annotate(caller_role=Subquery(role))
    comparison = next(iter(qs[:1]), None)
    if comparison is not None and user.is_superuser:
        comparison.caller_role = Role.ADMIN
    return comparison


def projects_visible(*, user):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def can_create_projects(user) -> bool:
    return user.is_superuser or user.has_perm("annotation.add_project")
