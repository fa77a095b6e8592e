"""The annotator's overview (me/work/) and the browser's session sign-in."""

import pytest
from rest_framework.test import APIClient

from annotation import queue, work
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Comparison, Role

from ..factories import MembershipFactory, ProjectFactory, UserFactory, make_comparison

pytestmark = pytest.mark.django_db


def _answer(comparison, user, key):
    claim = queue.comparison_claim(project_id=comparison.project_id, annotator_id=user.pk)
    assert claim.comparison_id == comparison.pk
    judgment_submit(
        comparison_id=comparison.pk,
        annotator_id=user.pk,
        answer=JudgmentInput(winner=comparison.candidate_ids[0]),
        idempotency_key=key,
    )


def test_work_counts_what_is_left_for_me_and_what_i_did_today(api, project, annotator):
    first = make_comparison(project, wanted=2, priority=3)
    make_comparison(project, wanted=1, priority=2)
    done_by_others = make_comparison(project, wanted=1, priority=1)
    Comparison.objects.filter(pk=done_by_others.pk).update(judged=1)
    make_comparison(project, wanted=1, is_gold=True, gold_answer={})  # gold checks are not "work left"
    elsewhere = ProjectFactory(name="Not mine")
    make_comparison(elsewhere, wanted=1)

    rows = api.as_user(annotator).get("/api/v1/me/work/").json()
    assert rows == [
        {
            "project": project.pk,
            "name": project.name,
            "modality": "text",
            "role": "annotator",
            "remaining": 2,
            "remaining_capped": False,
            "done_today": 0,
            "gold_warning": None,
            "paused": None,
            "gold": None,
        }
    ]

    _answer(first, annotator, "k1")
    row = api.as_user(annotator).get("/api/v1/me/work/").json()[0]
    # first still wants a second judgment, but not from me.
    assert (row["remaining"], row["done_today"]) == (1, 1)


def test_a_large_backlog_is_counted_only_up_to_the_cap(api, project, annotator, monkeypatch):
    monkeypatch.setattr(work, "REMAINING_COUNT_CAP", 3)
    for _ in range(5):
        make_comparison(project, wanted=1)
    row = api.as_user(annotator).get("/api/v1/me/work/").json()[0]
    assert (row["remaining"], row["remaining_capped"]) == (3, True)
    monkeypatch.setattr(work, "REMAINING_COUNT_CAP", 5)
    row = api.as_user(annotator).get("/api/v1/me/work/").json()[0]
    assert (row["remaining"], row["remaining_capped"]) == (5, False)  # exactly the cap is still exact


def test_a_researcher_sees_their_role(api, project, researcher):
    assert api.as_user(researcher).get("/api/v1/me/work/").json()[0]["role"] == Role.RESEARCHER


def test_session_sign_in_needs_the_csrf_token_and_the_right_password(db):
    user = UserFactory(username="sam")
    project = ProjectFactory()
    MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    browser = APIClient(enforce_csrf_checks=True)
    page = browser.get("/")  # the app's page sets the CSRF cookie
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None

    refused = browser.post("/api/v1/auth/session/", {"username": "sam", "password": "pw-for-tests"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["message"] == "CSRF check failed: CSRF token missing. Reload the page and try again."

    if token is None:
        pytest.skip("the web app is not built, so no page set the CSRF cookie")
    wrong = browser.post(
        "/api/v1/auth/session/", {"username": "sam", "password": "nope"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert wrong.status_code == 400 and wrong.json()["message"] == "Wrong username or password."

    ok = browser.post(
        "/api/v1/auth/session/", {"username": "sam", "password": "pw-for-tests"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert ok.status_code == 200 and ok.json()["username"] == "sam"
    token = ok.cookies["csrftoken"].value if "csrftoken" in ok.cookies else token  # rotated on login
    assert browser.get("/api/v1/me/work/").json()[0]["project"] == project.pk

    assert browser.post("/api/v1/auth/session/end/", HTTP_X_CSRFTOKEN=token).status_code == 204
    assert browser.get("/api/v1/me/").status_code in (401, 403)
