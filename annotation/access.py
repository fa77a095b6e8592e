"""Who may do what in a project (DESIGN §8), enforced by every view.

Roles rank annotator < researcher < admin; each includes the rights below it.
Django superusers act as admins of every project. A user who is not a member
of a project gets 404 for it, not 403, so a project's existence is not leaked.
"""

from __future__ import annotations

import json

from django.db import connection
from django.http import Http404
from rest_framework.exceptions import PermissionDenied

from .models import ROLE_RANK, Comparison, Membership, Project, Role
from .quality.position import open_checks_sql


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


# The labelling hot path (next, submit, skip, release) checks membership with one
# hand-written query each: the ORM's query building cost ~0.6-1 ms of CPU per
# request here, more than the database's work (bench/README.md). They return
# model instances with only the fields the queue needs loaded; any other field
# is deferred and loads on access, as with QuerySet.only().

# With position checks off the CASE never runs its subquery: the query costs what it did without them.
_PROJECT_FOR_QUEUE = (
    """
SELECT p.id, p.lease_seconds, p.gold_share, m.role,
  (SELECT ap.reason FROM annotation_annotatorpause ap
   WHERE ap.project_id = p.id AND ap.annotator_id = %s AND ap.resumed_at IS NULL),
  p.position_check_share, p.position_check_after_min,
  CASE WHEN p.position_check_share > 0 THEN """
    + open_checks_sql("p.id")
    + """ END
FROM annotation_project p
LEFT JOIN annotation_membership m ON m.project_id = p.id AND m.user_id = %s
WHERE p.id = %s
"""
)

_COMPARISON_FOR_SUBMIT = """
SELECT c.id, c.project_id, c.candidate_ids, p.schema, p.modality, m.role,
  c.is_gold, p.position_check_share, p.position_check_after_min, p.position_check_after_max
FROM annotation_comparison c
JOIN annotation_project p ON p.id = c.project_id
LEFT JOIN annotation_membership m ON m.project_id = c.project_id AND m.user_id = %s
WHERE c.id = %s
"""


def project_for_queue(*, user, project_id: int) -> Project:
    """``project_for`` for the queue: the project with id, lease, gold and position-check settings loaded,
    ``paused_reason``: why the user is paused in it (annotation.quality.gold), or None, and ``position_checks``: the
    user's open position checks there (annotation.quality.position: ``DUE``, ``WAITING`` or None). The pause and
    check probes ride on the same query."""
    with connection.cursor() as cursor:
        cursor.execute(_PROJECT_FOR_QUEUE, [user.pk, user.pk, user.pk, project_id])
        row = cursor.fetchone()
    if row is None or (row[3] is None and not user.is_superuser):
        raise Http404("No project with this id that you are a member of.")
    project = _partial(
        Project,
        id=row[0],
        lease_seconds=row[1],
        gold_share=row[2],
        position_check_share=row[5],
        position_check_after_min=row[6],
    )
    project.paused_reason = row[4]
    project.position_checks = row[7]
    return project


def comparison_for_submit(*, user, comparison_id: int) -> Comparison | None:
    """The comparison with its candidate ids and gold flag, and its project with schema, modality and position-check
    settings, if the user is a member of that project; else None."""
    with connection.cursor() as cursor:
        cursor.execute(_COMPARISON_FOR_SUBMIT, [user.pk, comparison_id])
        row = cursor.fetchone()
    if row is None or (row[5] is None and not user.is_superuser):
        return None
    comparison_pk, project_pk, candidate_ids, schema, modality, _, is_gold, share, after_min, after_max = row
    comparison = _partial(
        Comparison, id=comparison_pk, project_id=project_pk, candidate_ids=_json(candidate_ids), is_gold=bool(is_gold)
    )
    comparison.project = _partial(
        Project,
        id=project_pk,
        schema=_json(schema),
        modality=modality,
        position_check_share=share,
        position_check_after_min=after_min,
        position_check_after_max=after_max,
    )
    return comparison


def _partial(model, **loaded):
    """A model instance with only ``loaded`` fields set, the rest deferred (Model.from_db
    takes the values in the model's field order)."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in loaded]
    return model.from_db(connection.alias, names, [loaded[name] for name in names])


def _json(value):
    """Raw queries return JSON columns decoded on Postgres, as text on SQLite."""
    return json.loads(value) if isinstance(value, str) else value


def projects_visible(*, user):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def can_create_projects(user) -> bool:
    return user.is_superuser or user.has_perm("annotation.add_project")
