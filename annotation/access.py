"""Who may do what in a project (DESIGN §8), enforced by every view.

Roles rank annotator < researcher < admin; each includes the rights below it.
Django superusers act as admins of every project. A user who is not a member
of a project gets 404 for it, not 403, so a project's existence is not leaked.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
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


def job_for(*, user, model, job_id: int, at_least: Role = Role.RESEARCHER):
    """A background job (an ``ImportJob`` or ``ExportJob``) in a project where the user has at least
    ``at_least``: 404 for a missing id and for a job in a project the user is not a member of (ids are not
    enumerable), 403 for a member whose role is too low."""
    noun = model._meta.verbose_name.replace(" job", "")
    job = model.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No {noun} with this id in a project you are a member of.")
    try:
        project_for(user=user, project_id=job.project_id, at_least=at_least)
    except Http404:
        raise Http404(f"No {noun} with this id in a project you are a member of.") from None
    return job


# The labelling hot path (next, submit) checks membership inside its one statement (annotation.queue,
# annotation.judgments): ``member_sql`` is that check in SQL, and ``refusal`` says why it failed, with a
# second query on that rare path only.


class Refused(Exception):
    """A statement gated by :func:`member_sql` found the user without the role it needs (or nothing with that id)."""


def member_sql(*, project: str, user: str, at_least: Role = Role.ANNOTATOR) -> str:
    """An SQL condition: ``user`` (an SQL expression, e.g. a parameter) holds at least ``at_least`` in ``project``
    (an SQL expression), or is a superuser, who acts as an admin everywhere. Two index probes."""
    roles = ", ".join(f"'{role.value}'" for role in Role if ROLE_RANK[role] >= ROLE_RANK[at_least])
    users = get_user_model()._meta.db_table
    return f"""(EXISTS (SELECT 1 FROM annotation_membership m
        WHERE m.project_id = {project} AND m.user_id = {user} AND m.role IN ({roles}))
     OR EXISTS (SELECT 1 FROM {users} u WHERE u.id = {user} AND u.is_superuser))"""


def refusal(*, user, project_id: int, at_least: Role = Role.ANNOTATOR) -> Exception:
    """The error for a user whom a gated statement refused in a project: 404 for a non-member, 403 for a role too
    low (as :func:`project_for`). A membership that changed in between reads as 404; the next request sees it."""
    try:
        project_for(user=user, project_id=project_id, at_least=at_least)
    except (Http404, PermissionDenied) as exc:
        return exc
    return Http404("No project with this id that you are a member of.")


def comparison_for(*, user, comparison_id: int) -> Comparison | None:
    """The comparison (id and project id loaded) if the user is a member of its project; else None."""
    return (
        Comparison.objects.filter(pk=comparison_id, project__in=projects_visible(user=user))
        .only("id", "project_id")
        .first()
    )


def projects_visible(*, user):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def can_create_projects(user) -> bool:
    return user.is_superuser or user.has_perm("annotation.add_project")
