"""The label-quality API: researchers see everyone's figures and flags in their projects and exclude annotators;
annotators and outsiders see nothing of it."""

import pytest
from django.contrib.admin.models import LogEntry

from annotation.models import AnnotatorExclusion, ProjectQuality
from annotation.quality.service import quality_recompute

from .export_world import judged_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(researcher, project):
    # The judged project's three annotators (anna, bob, cara) and a researcher of it.
    world = judged_project()
    world.project.memberships.create(user=researcher, role="researcher")
    quality_recompute(project_id=world.project.pk)
    return world


def _url(world, suffix=""):
    return f"/api/v1/projects/{world.project.pk}/quality/{suffix}"


def test_a_researcher_sees_every_annotators_figures_and_gold_accuracy_with_its_interval(api, world, researcher):
    body = api.as_user(researcher).get(_url(world)).json()
    rows = {row["username"]: row for row in body["annotators"]}
    assert set(rows) == {"anna", "bob", "cara"}
    bob = rows["bob"]  # answered the one gold check wrongly
    assert (bob["gold_judged"], bob["gold_accuracy"], bob["gold_accuracy_low"]) == (1, 0.0, 0.0)
    assert 0.7 < bob["gold_accuracy_high"] < 0.85  # Wilson at 0 of 1
    assert rows["anna"]["judgments"] == 5 and rows["anna"]["median_time_ms"] is not None
    assert body["statistics"]["choice"]["krippendorff_alpha"] is not None and body["new_judgments"] == 0


def test_annotators_and_outsiders_see_no_quality_figures_nor_flags(api, world, outsider):
    anna = world.users[0]
    for method, suffix in (("get", ""), ("post", "recompute/"), ("post", f"annotators/{anna.pk}/exclusion/")):
        assert getattr(api.as_user(anna), method)(_url(world, suffix)).status_code == 403
        assert getattr(api.as_user(outsider), method)(_url(world, suffix)).status_code == 404
    assert not AnnotatorExclusion.objects.exists()


def test_excluding_and_restoring_through_the_api_is_reversible_and_audited(api, world, researcher):
    bob = world.users[1]
    client = api.as_user(researcher)
    response = client.post(_url(world, f"annotators/{bob.pk}/exclusion/"), {"reason": "fails gold"}, format="json")
    assert response.status_code == 200
    row = next(r for r in response.json()["annotators"] if r["username"] == "bob")
    assert row["excluded"] and row["excluded_by"] == researcher.username and row["exclusion_reason"] == "fails gold"

    response = client.delete(_url(world, f"annotators/{bob.pk}/exclusion/"))
    assert not next(r for r in response.json()["annotators"] if r["username"] == "bob")["excluded"]
    assert LogEntry.objects.filter(user=researcher, object_id=str(world.project.pk)).count() == 2

    again = client.delete(_url(world, f"annotators/{bob.pk}/exclusion/"))
    assert again.status_code == 400 and again.json()["errors"]["user_id"] == [
        f"User {bob.pk} is not excluded in this project."
    ]


def test_excluding_someone_who_is_not_a_member_names_the_user(api, world, researcher, outsider):
    response = api.as_user(researcher).post(_url(world, f"annotators/{outsider.pk}/exclusion/"), {}, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == f"user_id: User {outsider.pk} is not a member of this project."


def test_a_researcher_can_ask_for_a_recomputation(api, world, researcher, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    ProjectQuality.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.as_user(researcher).post(_url(world, "recompute/")).status_code == 202
    assert ProjectQuality.objects.filter(project=world.project).exists()
