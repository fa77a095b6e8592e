"""Gold thresholds (issue 18): an annotator clearly below the project's gold accuracy thresholds is warned, then
paused (next answers 403 with the reason) until a researcher resumes them; annotators see their own gold accuracy
only where the project shows it, and never anyone else's."""

import pytest
from django.contrib.admin.models import LogEntry

from annotation.models import AnnotatorPause
from annotation.quality.gold import GoldSettingsError, parse_gold_settings
from annotation.quality.service import quality_recompute

from ..factories import make_comparison
from .export_world import judged_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(researcher):
    # anna, bob and cara annotate; bob answered the one gold check wrongly (0 of 1: at most 79 % at 95 %).
    world = judged_project()
    world.project.memberships.create(user=researcher, role="researcher")
    make_comparison(world.project)  # something left for bob to be served
    return world


def _set_gold(world, **settings):
    world.project.gold_settings = parse_gold_settings({"min_gold": 1, **settings}).to_json()
    world.project.save(update_fields=["gold_settings"])
    quality_recompute(project_id=world.project.pk)


def _work_row(api, user, project):
    rows = api.as_user(user).get("/api/v1/me/work/").json()
    return next(r for r in rows if r["project"] == project.pk)


def _next(api, user, project):
    return api.as_user(user).get(f"/api/v1/projects/{project.pk}/next/")


def test_an_annotator_below_the_pause_threshold_gets_a_403_naming_the_reason_until_a_researcher_resumes(
    api, world, researcher
):
    anna, bob, _ = world.users
    _set_gold(world, warn_below=0.9, pause_below=0.85)

    refused = _next(api, bob, world.project)
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert "paused" in message and "0% of the time over 1 check (" in message and "85% pause threshold" in message
    assert _work_row(api, bob, world.project)["paused"] and _work_row(api, bob, world.project)["gold_warning"] is None
    assert _next(api, anna, world.project).status_code == 200  # anna judged no gold: never paused

    table = api.as_user(researcher).get(f"/api/v1/projects/{world.project.pk}/quality/").json()
    row = next(r for r in table["annotators"] if r["username"] == "bob")
    assert row["paused"] and "85% pause threshold" in row["pause_reason"]

    resumed = api.as_user(researcher).delete(f"/api/v1/projects/{world.project.pk}/quality/annotators/{bob.pk}/pause/")
    assert resumed.status_code == 200
    assert not next(r for r in resumed.json()["annotators"] if r["username"] == "bob")["paused"]
    assert _next(api, bob, world.project).status_code == 200
    assert LogEntry.objects.filter(user=researcher, change_message__contains=f"Resumed annotator {bob.pk}").exists()

    # The recompute does not pause him again before min_gold more gold checks; the history stays.
    quality_recompute(project_id=world.project.pk)
    assert _next(api, bob, world.project).status_code == 200
    assert AnnotatorPause.objects.filter(annotator=bob, resumed_by=researcher).count() == 1

    again = api.as_user(researcher).delete(f"/api/v1/projects/{world.project.pk}/quality/annotators/{bob.pk}/pause/")
    assert again.status_code == 400 and "not paused" in again.json()["errors"]["user_id"][0]


def test_an_annotator_below_the_warning_threshold_sees_the_warning_and_still_works(api, world):
    _, bob, cara = world.users
    _set_gold(world, warn_below=0.9)
    row = _work_row(api, bob, world.project)
    assert "0% of the time over 1 check (" in row["gold_warning"] and "90% warn threshold" in row["gold_warning"]
    assert row["paused"] is None and _next(api, bob, world.project).status_code == 200
    assert _work_row(api, cara, world.project)["gold_warning"] is None


def test_thresholds_are_off_by_default_and_need_min_gold_checks(api, world):
    bob = world.users[1]
    quality_recompute(project_id=world.project.pk)
    assert _work_row(api, bob, world.project)["gold_warning"] is None
    _set_gold(world, warn_below=0.9, pause_below=0.85, min_gold=2)  # bob judged only one
    assert _next(api, bob, world.project).status_code == 200
    assert _work_row(api, bob, world.project)["gold_warning"] is None


def test_annotators_see_their_own_gold_accuracy_only_where_the_project_allows_it_and_never_others(
    api, world, researcher
):
    anna, bob, _ = world.users
    _set_gold(world)
    assert _work_row(api, bob, world.project)["gold"] is None

    _set_gold(world, show_own_accuracy=True)
    gold = _work_row(api, bob, world.project)["gold"]
    assert (gold["judged"], gold["accuracy"], gold["low"]) == (1, 0.0, 0.0) and 0.7 < gold["high"] < 0.85
    assert _work_row(api, anna, world.project)["gold"] is None  # anna judged no gold; bob's figures are not hers
    assert api.as_user(bob).get(f"/api/v1/projects/{world.project.pk}/quality/").status_code == 403
    resume = api.as_user(bob).delete(f"/api/v1/projects/{world.project.pk}/quality/annotators/{bob.pk}/pause/")
    assert resume.status_code == 403


def test_researchers_set_gold_thresholds_on_the_project_and_bad_ones_are_refused_by_name(api, world, project, admin):
    world.project.memberships.create(user=admin, role="admin")
    url = f"/api/v1/projects/{world.project.pk}/"
    ok = api.as_user(admin).patch(url, {"gold_settings": {"warn_below": 0.7, "pause_below": 0.5}}, format="json")
    assert ok.status_code == 200
    assert ok.json()["gold_settings"] == {
        "warn_below": 0.7,
        "pause_below": 0.5,
        "min_gold": 10,
        "show_own_accuracy": False,
        "promote_min_judgments": 3,
    }
    bad = api.as_user(admin).patch(url, {"gold_settings": {"pause_below": 0.8, "warn_below": 0.7}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"]["gold_settings.pause_below"][0].startswith("Must not be above warn_below")
    assert bad.json()["message"].startswith("gold_settings.pause_below: Must not be above warn_below (0.7)")
    with pytest.raises(GoldSettingsError) as exc:
        parse_gold_settings({"min_gold": 0, "warn_below": 2, "colour": "red"})
    assert set(exc.value.errors) == {"min_gold", "warn_below", "colour"}
