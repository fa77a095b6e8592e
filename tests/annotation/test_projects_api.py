"""Projects, members, stats, comparisons, tokens and ``me`` over the REST API."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Comparison, ComparisonStatus, Membership, Project, Role

from ..factories import (
    CandidateFactory,
    MembershipFactory,
    ProjectFactory,
    PromptFactory,
    UserFactory,
    make_comparison,
)

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's


@pytest.fixture(autouse=True)
def _fast_passwords_and_a_fresh_cache(settings):
    # The default hasher takes ~0.3 s a password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The token cache and the login throttle's counters live in the process-wide cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def creator(db):
    user = UserFactory(username="cleo")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="annotation", codename="add_project"))
    return user


def member(project, name, role):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role=role)
    return user


# --- Projects -------------------------------------------------------------------------------------------

SCHEMA = {
    "arity": 3,
    "allow_tie": False,
    "strength": None,
    "criteria": [{"key": "honest", "label": "Honesty", "min": 1, "max": 7}],
    "span_categories": [],
    "rationale": "required",
}


def test_a_user_with_the_add_project_permission_creates_a_project_and_becomes_its_admin(api, creator):
    response = api.as_user(creator).post(
        "/api/v1/projects/", {"name": "Ranking", "schema": SCHEMA, "overlap": 3}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["overlap"], body["my_role"]) == ("Ranking", 3, "admin")
    assert body["schema"]["arity"] == 3
    assert body["schema"]["criteria"] == [{"key": "honest", "label": "Honesty", "min": 1, "max": 7}]
    project = Project.objects.get(pk=body["id"])
    assert project.created_by == creator
    assert list(project.memberships.values_list("user__username", "role")) == [("cleo", "admin")]
    assert api.get(f"/api/v1/projects/{project.pk}/").json()["my_role"] == "admin"


def test_a_project_created_without_a_schema_gets_the_default_schema(api, creator):
    response = api.as_user(creator).post("/api/v1/projects/", {"name": "Plain"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["schema"]["arity"] == 2
    assert response.json()["modality"] == "text"


def test_a_superuser_may_create_projects(api):
    boss = UserFactory(username="boss", is_superuser=True)
    response = api.as_user(boss).post("/api/v1/projects/", {"name": "Boss's"}, format="json")
    assert response.status_code == 201, response.json()
    assert Membership.objects.get(project_id=response.json()["id"]).user == boss


def test_creating_a_project_needs_the_add_project_permission(api, project, admin):
    # Being admin of some project does not make one a project creator.
    response = api.as_user(admin).post("/api/v1/projects/", {"name": "Mine"}, format="json")
    assert response.status_code == 403
    assert "permission" in response.json()["message"]
    assert not Project.objects.filter(name="Mine").exists()


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"arity": 1}, "schema.arity"),
        ({"rationale": "sometimes"}, "schema.rationale"),
        ({"criteria": [{"key": "Not A Key"}]}, "schema.criteria[0].key"),
        ({"colour": "red"}, "schema.colour"),
        # A signed strength scale is refused: the chosen candidate gives the direction, strength only how much.
        ({"strength": {"min": -3, "max": 3}}, "schema.strength"),
        ([1, 2], "schema"),
    ],
)
def test_an_invalid_schema_is_refused_naming_the_field(api, creator, schema, path):
    response = api.as_user(creator).post("/api/v1/projects/", {"name": "Bad", "schema": schema}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"schema"}
    assert body["message"].startswith("schema")
    assert any(path in message for message in body["errors"]["schema"]), body
    assert not Project.objects.filter(name="Bad").exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [({}, "name"), ({"name": "x", "overlap": 0}, "overlap"), ({"name": "x", "gold_share": 1.5}, "gold_share")],
)
def test_other_invalid_project_fields_are_named(api, creator, fields, field):
    response = api.as_user(creator).post("/api/v1/projects/", fields, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["message"].startswith(field)


def test_an_admin_updates_a_project(api, project, admin):
    response = api.as_user(admin).patch(
        f"/api/v1/projects/{project.pk}/",
        {"name": "Renamed", "guidelines": "# Be kind", "lease_seconds": 120},
        format="json",
    )
    assert response.status_code == 200, response.json()
    project.refresh_from_db()
    assert (project.name, project.guidelines, project.lease_seconds) == ("Renamed", "# Be kind", 120)
    assert response.json()["my_role"] == "admin"


def test_an_update_with_an_invalid_schema_is_refused_and_changes_nothing(api, project, admin):
    before = (project.name, project.schema)
    response = api.as_user(admin).patch(
        f"/api/v1/projects/{project.pk}/", {"name": "New", "schema": {"arity": "two"}}, format="json"
    )
    assert response.status_code == 400
    assert "schema" in response.json()["errors"]
    project.refresh_from_db()
    assert (project.name, project.schema) == before


def test_the_arity_of_a_project_with_comparisons_cannot_change(api, project, admin):
    make_comparison(project)
    response = api.as_user(admin).patch(
        f"/api/v1/projects/{project.pk}/", {"schema": {**project.schema, "arity": 3}}, format="json"
    )
    assert response.status_code == 400
    assert "schema.arity" in response.json()["errors"]
    project.refresh_from_db()
    assert project.schema["arity"] == 2


def test_an_admin_deletes_a_project_with_everything_in_it(api, project, admin):
    make_comparison(project)
    assert api.as_user(admin).delete(f"/api/v1/projects/{project.pk}/").status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Comparison.objects.filter(project_id=project.pk).exists()
    assert api.get(f"/api/v1/projects/{project.pk}/").status_code == 404


# --- Members ----------------------------------------------------------------------------------------------


def members_of(api, project):
    response = api.get(f"/api/v1/projects/{project.pk}/members/")
    assert response.status_code == 200, response.json()
    return {(m["username"], m["role"]) for m in response.json()}


def test_a_researcher_lists_the_members(api, project, annotator, researcher, admin):
    client = api.as_user(researcher)
    assert members_of(client, project) == {("anna", "annotator"), ("rita", "researcher"), ("adam", "admin")}


def test_an_admin_adds_a_member_by_username_and_changes_their_role(api, project, admin):
    newcomer = UserFactory(username="nina")
    client = api.as_user(admin)
    response = client.post(
        f"/api/v1/projects/{project.pk}/members/", {"username": "nina", "role": "annotator"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["user"] == newcomer.pk
    response = client.patch(f"/api/v1/projects/{project.pk}/members/{newcomer.pk}/", {"role": "researcher"})
    assert response.status_code == 200, response.json()
    assert members_of(client, project) == {("adam", "admin"), ("nina", "researcher")}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "nobody", "role": "annotator"}, "username"),
        ({"username": "nina", "role": "owner"}, "role"),
        ({"role": "annotator"}, "username"),
    ],
)
def test_adding_a_member_names_the_wrong_field(api, project, admin, body, field):
    UserFactory(username="nina")
    response = api.as_user(admin).post(f"/api/v1/projects/{project.pk}/members/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Membership.objects.filter(project=project, user__username="nina").exists()


def test_an_inactive_user_cannot_be_added(api, project, admin):
    UserFactory(username="gone", is_active=False)
    response = api.as_user(admin).post(
        f"/api/v1/projects/{project.pk}/members/", {"username": "gone", "role": "annotator"}, format="json"
    )
    assert response.status_code == 400
    assert "username" in response.json()["errors"]


def test_an_admin_removes_a_member(api, project, annotator, admin):
    client = api.as_user(admin)
    assert client.delete(f"/api/v1/projects/{project.pk}/members/{annotator.pk}/").status_code == 204
    assert members_of(client, project) == {("adam", "admin")}
    # The former member now gets 404 for the project.
    assert api.as_user(annotator).get(f"/api/v1/projects/{project.pk}/").status_code == 404


def test_the_last_admin_cannot_be_removed(api, project, admin):
    response = api.as_user(admin).delete(f"/api/v1/projects/{project.pk}/members/{admin.pk}/")
    assert response.status_code == 409
    assert "at least one admin" in response.json()["message"]
    assert Membership.objects.filter(project=project, user=admin, role=Role.ADMIN).exists()


def test_the_last_admin_cannot_be_demoted(api, project, admin):
    response = api.as_user(admin).patch(
        f"/api/v1/projects/{project.pk}/members/{admin.pk}/", {"role": "researcher"}, format="json"
    )
    assert response.status_code == 400
    assert "at least one admin" in response.json()["errors"]["role"][0]
    assert Membership.objects.get(project=project, user=admin).role == Role.ADMIN


def test_an_admin_may_step_down_once_there_is_another_admin(api, project, admin):
    second = member(project, "zoe", Role.ADMIN)
    client = api.as_user(admin)
    response = client.patch(f"/api/v1/projects/{project.pk}/members/{admin.pk}/", {"role": "annotator"}, format="json")
    assert response.status_code == 200, response.json()
    client = api.as_user(second)
    assert client.delete(f"/api/v1/projects/{project.pk}/members/{admin.pk}/").status_code == 204
    assert members_of(client, project) == {("zoe", "admin")}


def test_changing_a_user_who_is_not_a_member_is_not_found(api, project, admin, outsider):
    response = api.as_user(admin).patch(
        f"/api/v1/projects/{project.pk}/members/{outsider.pk}/", {"role": "annotator"}, format="json"
    )
    assert response.status_code == 404
    assert not Membership.objects.filter(project=project, user=outsider).exists()


# --- Stats ----------------------------------------------------------------------------------------------------


def judge(api, user, comparison, key):
    """The user asks for a task, is served ``comparison``, and answers it."""
    served = api.as_user(user).get(f"/api/v1/projects/{comparison.project_id}/next/")
    assert served.json()["comparison"] == comparison.pk
    response = api.as_user(user).post(
        f"/api/v1/comparisons/{comparison.pk}/judgments/",
        {"winner": comparison.candidate_ids[0]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.json()


def test_stats_count_what_was_judged(api, project, annotator, researcher):
    bob = member(project, "bob", Role.ANNOTATOR)
    first = make_comparison(project, wanted=2)
    second = make_comparison(project, wanted=2)
    gold = make_comparison(project, wanted=1000, is_gold=True, gold_answer={"winner": 0})
    paused = make_comparison(project, wanted=2)
    Comparison.objects.filter(pk=paused.pk).update(status=ComparisonStatus.PAUSED)
    judge(api, annotator, first, "a1")
    Project.objects.filter(pk=project.pk).update(gold_share=1.0)  # served between real tasks
    judge(api, annotator, gold, "a3")
    Project.objects.filter(pk=project.pk).update(gold_share=0.0)
    judge(api, annotator, second, "a2")
    judge(api, bob, first, "b1")  # first now has both judgments it wanted
    # A live lease: the researcher claims the only open non-gold comparison left for them.
    assert api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/next/").json()["comparison"] == second.pk

    response = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/stats/")
    assert response.status_code == 200, response.json()
    stats = response.json()
    assert stats["comparisons"] == {"total": 4, "open": 2, "done": 1, "paused": 1, "gold": 1}
    # Open, not gold: only `second`, which wants 2 and has 1.
    assert stats["queue"] == {"open_comparisons": 1, "judgments_remaining": 1, "live_leases": 1}
    assert stats["judgments"]["total"] == 4
    per_annotator = {
        row["annotator__username"]: (row["judgments"], row["gold_judgments"])
        for row in stats["judgments"]["per_annotator"]
    }
    assert per_annotator == {"anna": (3, 1), "bob": (1, 0)}
    assert stats["judgments"]["per_annotator"][0]["annotator__username"] == "anna"  # most judgments first
    assert [row["judgments"] for row in stats["judgments"]["per_day"]] == [4]
    assert datetime.date.fromisoformat(str(stats["judgments"]["per_day"][0]["day"])) == timezone.now().date()
    assert (stats["prompts"], stats["candidates"]) == (4, 8)


def test_stats_of_an_empty_project_are_zero(api, project, researcher):
    stats = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/stats/").json()
    assert stats["comparisons"] == {"total": 0, "open": 0, "done": 0, "paused": 0, "gold": 0}
    assert stats["queue"] == {"open_comparisons": 0, "judgments_remaining": 0, "live_leases": 0}
    assert stats["judgments"] == {"total": 0, "per_annotator": [], "per_day": []}


# --- Comparisons ---------------------------------------------------------------------------------------------


@pytest.fixture
def three_comparisons(project):
    open_ = make_comparison(project)
    done = make_comparison(project)
    paused = make_comparison(project, is_gold=True, gold_answer={"tie": True})
    Comparison.objects.filter(pk=done.pk).update(status=ComparisonStatus.DONE, judged=1)
    Comparison.objects.filter(pk=paused.pk).update(status=ComparisonStatus.PAUSED)
    return {"open": open_, "done": done, "paused": paused}


def listed(response):
    assert response.status_code == 200, response.json()
    return [c["id"] for c in response.json()["results"]]


def test_comparisons_are_listed_newest_first(api, project, researcher, three_comparisons):
    ids = listed(api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/comparisons/"))
    assert ids == sorted((c.pk for c in three_comparisons.values()), reverse=True)


@pytest.mark.parametrize("status", ["open", "done", "paused"])
def test_comparisons_are_filtered_by_status(api, project, researcher, three_comparisons, status):
    response = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/comparisons/", {"status": status})
    assert listed(response) == [three_comparisons[status].pk]
    assert response.json()["results"][0]["status"] == status


def test_the_comparison_list_shows_what_a_researcher_needs(api, project, researcher, three_comparisons):
    response = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/comparisons/", {"status": "paused"})
    (row,) = response.json()["results"]
    paused = three_comparisons["paused"]
    assert row["candidate_ids"] == paused.candidate_ids
    assert (row["prompt"], row["is_gold"], row["external_id"]) == (paused.prompt_id, True, paused.external_id)


def test_an_unknown_status_filter_is_refused(api, project, researcher, three_comparisons):
    response = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/comparisons/", {"status": "closed"})
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_the_comparison_list_pages(api, project, researcher):
    for _ in range(5):
        make_comparison(project)
    client = api.as_user(researcher)
    first = client.get(f"/api/v1/projects/{project.pk}/comparisons/", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert not {c["id"] for c in first["results"]} & {c["id"] for c in second["results"]}


def test_building_comparisons_is_idempotent(api, project, researcher):
    prompt = PromptFactory(project=project)
    for _ in range(3):
        CandidateFactory(prompt=prompt)
    client = api.as_user(researcher)
    url = f"/api/v1/projects/{project.pk}/comparisons/build/"
    assert client.post(url, {"mode": "pairs"}, format="json").json() == {"created": 3}
    assert client.post(url, {"mode": "pairs"}, format="json").json() == {"created": 0}
    assert Comparison.objects.filter(project=project).count() == 3
    response = client.post(url, {"mode": "triples"}, format="json")
    assert response.status_code == 400
    assert "mode" in response.json()["errors"]


# --- Tokens and me -------------------------------------------------------------------------------------------


def test_the_right_password_gets_a_token_that_authenticates(annotator):
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": "anna", "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.json()
    token = response.json()["token"]
    assert Token.objects.get(key=token).user == annotator
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/me/").json()["username"] == "anna"
    # Asking again gives the same token.
    again = APIClient().post("/api/v1/auth/token/", {"username": "anna", "password": PASSWORD}, format="json")
    assert again.json()["token"] == token


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Which of the two was wrong is not said (nor which field): the pair is.
        ({"username": "anna", "password": "wrong"}, "non_field_errors"),
        ({"username": "nobody", "password": PASSWORD}, "non_field_errors"),
        ({"username": "anna"}, "password"),
        ({"password": PASSWORD}, "username"),
    ],
)
def test_a_wrong_login_gets_no_token(annotator, body, field):
    response = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["message"]
    if field == "non_field_errors":
        assert response.json()["message"] == "Wrong username or password."
    assert not Token.objects.exists()


def test_an_inactive_user_gets_no_token(db):
    UserFactory(username="gone", is_active=False)
    response = APIClient().post("/api/v1/auth/token/", {"username": "gone", "password": PASSWORD}, format="json")
    assert response.status_code == 400


def test_a_revoked_token_stops_working_at_once(annotator):
    client = APIClient()
    token = client.post("/api/v1/auth/token/", {"username": "anna", "password": PASSWORD}, format="json").json()[
        "token"
    ]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/me/").status_code == 200  # now in the token cache
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["message"]
    assert not Token.objects.filter(user=annotator).exists()


def test_an_unknown_token_is_refused(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert "token" in response.json()["message"].lower()


def test_me_describes_the_caller(api, annotator, creator):
    assert api.as_user(annotator).get("/api/v1/me/").json() == {
        "id": annotator.pk,
        "username": "anna",
        "is_superuser": False,
        "can_create_projects": False,
    }
    assert api.as_user(creator).get("/api/v1/me/").json()["can_create_projects"] is True
    boss = UserFactory(username="boss", is_superuser=True)
    me = api.as_user(boss).get("/api/v1/me/").json()
    assert (me["is_superuser"], me["can_create_projects"]) == (True, True)


def test_a_project_list_shows_each_project_with_the_callers_role(api, annotator, project):
    other = ProjectFactory()
    MembershipFactory(project=other, user=annotator, role=Role.RESEARCHER)
    results = api.as_user(annotator).get("/api/v1/projects/").json()["results"]
    assert [(p["id"], p["my_role"]) for p in results] == [(other.pk, "researcher"), (project.pk, "annotator")]
