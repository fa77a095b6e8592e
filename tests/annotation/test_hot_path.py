"""The labelling hot path (next → submit, issue 21): one SQL statement per request on Postgres, with the membership
check inside it; token calls that pass over the browser's middleware; answers checked before the write against a
copy of the project's rules that may be stale; JSON through orjson that reads as DRF's."""

import runpy
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from annotation.api.middleware import BrowserOnlyCsrfViewMiddleware, BrowserOnlySessionMiddleware
from annotation.api.renderers import OrjsonParser, OrjsonRenderer
from annotation.authentication import token_for
from annotation.models import Judgment, Project, Role

from ..factories import MembershipFactory, ProjectFactory, UserFactory, make_comparison

ROOT = Path(__file__).resolve().parents[2]

# Statements per call in autocommit mode, as in production, with token lookups cached. SQLite runs
# the claim and the submission as a few statements inside one BEGIN IMMEDIATE … COMMIT, and reads the task's
# content after the claim.
STATEMENTS = {
    "postgresql": {"next": 1, "resumed": 1, "ahead": 1, "submit": 1},
    "sqlite": {"next": 7, "resumed": 5, "ahead": 7, "submit": 6},
}


@pytest.fixture
def token_cache(settings):
    """Token lookups cached, as production does by default (annotation/authentication.py)."""
    settings.TOKEN_CACHE_SECONDS = 60
    cache.clear()
    yield
    cache.clear()


def _token_client(user) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {token_for(user=user)}")


def _member(project, name, role=Role.ANNOTATOR):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role=role)
    return user


def _next(client, project, ahead=False):
    response = client.get(f"/api/v1/projects/{project.pk}/next/", {"ahead": 1} if ahead else {})
    assert response.status_code == 200, response.content
    return response.json()


def _submit(client, task, key, **body):
    body = body or {"winner": task["candidates"][0]["id"]}
    return client.post(
        f"/api/v1/comparisons/{task['comparison']}/judgments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def _statements(call):
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return response, [q["sql"] for q in queries]


def _cycle(client, project, n):
    """One label as the web app makes it: the task, a reload, the task fetched ahead, the answer (and the ahead
    task's answer, so the next cycle starts from nothing held)."""
    task, nxt = _statements(lambda: _next(client, project))
    _, resumed = _statements(lambda: _next(client, project))
    ahead_task, ahead = _statements(lambda: _next(client, project, ahead=True))
    response, submit = _statements(lambda: _submit(client, task, f"k{n}"))
    assert response.status_code == 201, response.content
    assert _submit(client, ahead_task, f"k{n}-ahead").status_code == 201
    return {"next": nxt, "resumed": resumed, "ahead": ahead, "submit": submit}


# --- Statements per request --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_next_and_submit_are_one_statement_each_on_postgres_with_the_membership_check_inside(project, token_cache):
    for _ in range(8):
        make_comparison(project)
    anna = _token_client(_member(project, "anna"))
    first = _cycle(anna, project, 0)
    warm = _cycle(anna, project, 1)
    counts = {k: len(v) for k, v in warm.items()}
    if connection.vendor in STATEMENTS:
        assert counts == STATEMENTS[connection.vendor]
    if connection.vendor == "postgresql":
        # The first submission of an annotator in a process reads the project's rules first.
        assert len(first["submit"]) == 2
        assert all("annotation_membership" in sql for sql in warm["next"] + warm["submit"])


@pytest.mark.django_db(transaction=True)
def test_the_hot_statements_are_prepared_once_per_connection_unless_turned_off(project, token_cache, settings):
    for _ in range(8):
        make_comparison(project)
    anna = _token_client(_member(project, "anna"))

    def prepared():
        if connection.vendor != "postgresql":
            return 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            return cursor.fetchone()[0]

    before = prepared()
    _cycle(anna, project, 0)
    _cycle(anna, project, 1)
    if connection.vendor == "postgresql":
        assert prepared() >= before + 2  # the claim and the submission (and the token lookup, when not cached)
    settings.DATABASE_PREPARED_STATEMENTS = False
    after = prepared()
    _cycle(anna, project, 2)
    assert prepared() == after


@pytest.mark.django_db(transaction=True)
def test_without_a_token_cache_each_call_reads_its_token_once_more(project, settings):
    settings.TOKEN_CACHE_SECONDS = 0
    for _ in range(6):
        make_comparison(project)
    anna = _token_client(_member(project, "anna"))
    _cycle(anna, project, 0)
    counts = {k: len(v) for k, v in _cycle(anna, project, 1).items()}
    if connection.vendor in STATEMENTS:
        assert counts == {k: n + 1 for k, n in STATEMENTS[connection.vendor].items()}


@pytest.mark.django_db(transaction=True)
def test_refusals_are_told_apart_on_their_own_path(project, token_cache):
    make_comparison(project)
    comparison = make_comparison(project)
    outsider = _token_client(UserFactory(username="otto"))
    missing = outsider.get("/api/v1/projects/999999/next/")
    foreign = outsider.get(f"/api/v1/projects/{project.pk}/next/")
    assert missing.status_code == foreign.status_code == 404
    assert missing.json() == foreign.json()
    answer = _submit(outsider, {"comparison": comparison.pk, "candidates": [{"id": comparison.candidate_ids[0]}]}, "o")
    assert answer.status_code == 404
    assert answer.json()["message"] == "No comparison with this id in a project you are a member of."
    assert not Judgment.objects.exists()


# --- Answers checked before the write ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_answer_checked_against_stale_rules_is_checked_again_against_the_stored_ones(project, token_cache):
    for _ in range(3):
        make_comparison(project)
    anna = _token_client(_member(project, "anna"))
    assert _submit(anna, _next(anna, project), "first").status_code == 201  # this process now knows the rules
    Project.objects.filter(pk=project.pk).update(schema={**project.schema, "rationale": "required"})
    task = _next(anna, project)
    refused = _submit(anna, task, "second")
    assert refused.status_code == 400 and "rationale" in refused.json()["errors"]
    assert Judgment.objects.count() == 1
    kept = _submit(anna, task, "third", winner=task["candidates"][1]["id"], rationale="clearer")
    assert kept.status_code == 201 and kept.json()["rationale"] == "clearer"


@pytest.mark.django_db
def test_an_answer_naming_another_comparisons_candidate_is_refused_naming_this_ones(project, token_cache):
    mine, other = make_comparison(project), make_comparison(project, priority=-1)
    anna = _token_client(_member(project, "anna"))
    assert _submit(anna, _next(anna, project), "first").status_code == 201
    task = _next(anna, project)
    assert task["comparison"] == other.pk
    refused = _submit(anna, task, "second", winner=mine.candidate_ids[0])
    assert refused.status_code == 400
    assert refused.json()["errors"]["winner"] == [
        f"Candidate {mine.candidate_ids[0]} is not in this comparison (candidates: {other.candidate_ids})."
    ]
    past_64_bits = _submit(anna, task, "third", winner=2**70)
    assert past_64_bits.status_code == 400 and "winner" in past_64_bits.json()["errors"]
    assert Judgment.objects.count() == 1


@pytest.mark.django_db
def test_a_ranking_that_leaves_out_a_candidate_is_refused(token_cache):
    project = ProjectFactory(schema={"arity": 3, "allow_tie": False, "rationale": "optional"})
    for _ in range(3):
        make_comparison(project, arity=3)
    anna = _token_client(_member(project, "anna"))
    task = _next(anna, project)
    ids = [c["id"] for c in task["candidates"]]
    assert _submit(anna, task, "full", ranking=ids).status_code == 201
    task = _next(anna, project)
    ids = [c["id"] for c in task["candidates"]]
    for n, ranking in enumerate([ids[:2], [], ids[:2] + ids[:1]]):
        refused = _submit(anna, task, f"short-{n}", ranking=ranking)
        assert refused.status_code == 400 and "ranking" in refused.json()["errors"], ranking
    assert Judgment.objects.count() == 1


@pytest.mark.django_db
def test_an_annotator_in_two_projects_is_held_to_each_ones_rules(token_cache):
    strict = ProjectFactory(schema={"arity": 2, "allow_tie": False, "rationale": "optional"})
    lenient = ProjectFactory(schema={"arity": 2, "allow_tie": True, "rationale": "optional"})
    user = UserFactory(username="anna")
    for project in (strict, lenient):
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        make_comparison(project)
        make_comparison(project)
    anna = _token_client(user)
    assert _submit(anna, _next(anna, strict), "s1").status_code == 201
    assert _submit(anna, _next(anna, lenient), "l1", tie=True).status_code == 201
    refused = _submit(anna, _next(anna, strict), "s2", tie=True)
    assert refused.status_code == 400 and refused.json()["errors"]["tie"] == ["This project does not allow ties."]
    assert _submit(anna, _next(anna, lenient), "l2", tie=True).status_code == 201


# --- The browser's middleware ------------------------------------------------------------------------------------


class _RefusingSessionStore:
    """A session engine that fails any request that touches it."""

    def __init__(self, *args, **kwargs):
        raise AssertionError("this request touched the session")


SessionStore = _RefusingSessionStore  # this module is the SESSION_ENGINE of the test below


@pytest.mark.django_db
def test_token_calls_never_touch_the_session_and_browser_calls_keep_csrf(project, annotator, settings, token_cache):
    for _ in range(3):
        make_comparison(project)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(annotator)
    task = _next(browser, project)
    refused = _submit(browser, task, "no-csrf")
    assert refused.status_code == 403 and refused.json()["message"].startswith("CSRF Failed")
    token = _token_client(annotator)
    assert _submit(token, task, "with-token").status_code == 201  # no CSRF token: none is needed

    settings.SESSION_ENGINE = __name__
    anna = _token_client(annotator)  # a new client: its handler loads the middleware with this engine
    assert _submit(anna, _next(anna, project), "sessionless").status_code == 201
    with pytest.raises(AssertionError, match="touched the session"):
        APIClient().get(f"/api/v1/projects/{project.pk}/next/")


def test_only_api_calls_with_a_token_pass_over_the_browsers_middleware():
    factory = RequestFactory()

    def passes_over(request):
        seen = []
        BrowserOnlySessionMiddleware(lambda r: seen.append(hasattr(r, "session")))(request)
        return seen == [False]

    token = {"HTTP_AUTHORIZATION": "Token abc"}
    assert passes_over(factory.get("/api/v1/projects/1/next/", **token))
    assert passes_over(factory.post("/api/v1/comparisons/1/judgments/", **token))
    assert not passes_over(factory.get("/api/v1/projects/1/next/"))  # the web app's session
    assert not passes_over(factory.get("/api/v1/me/", HTTP_AUTHORIZATION="Basic abc"))
    assert not passes_over(factory.get("/admin/", **token))
    assert not passes_over(factory.post("/api/v1/auth/session/", **token))  # signing in needs the session
    csrf = BrowserOnlyCsrfViewMiddleware(lambda r: None)
    assert csrf.process_view(factory.post("/api/v1/comparisons/1/judgments/", **token), None, (), {}) is None


# --- JSON through orjson -----------------------------------------------------------------------------------------


def test_the_orjson_renderer_writes_what_drfs_json_renderer_writes():
    import json
    from datetime import UTC, datetime

    documents = [
        {
            "comparison": 17,
            "prompt": {"id": 3, "text": "Paris 🇫🇷 e\u0301 \u2028 line \u2029 para <b>", "context": [{"role": "user"}]},
            "candidates": [{"id": 1, "text": "x", "mime_type": "text/plain", "media_url": None}],
            "lease_expires_at": datetime(2026, 12, 6, 20, 1, 2, 345678, tzinfo=UTC),
            "resumed": False,
            "ratings": {"7": {"helpful": 4}},
            "box": [0.1, 0.25, 0.5, 1.0],
        },
        {"message": "Bad.", "errors": {"spans[0].start": ["Must be a number."]}},
        [],
        {"lease_expires_at": datetime(2026, 12, 6, 20, 1, 2, tzinfo=UTC), "n": {1: "int key"}},
    ]
    for data in documents:
        assert OrjsonRenderer().render(data) == JSONRenderer().render(data)
    assert OrjsonRenderer().render(None) == JSONRenderer().render(None) == b""
    tiny = {"start": 1e-07, "end": 2.5e300}  # the same numbers, written 1e-7 and 2.5e+300 by orjson
    assert json.loads(OrjsonRenderer().render(tiny)) == json.loads(JSONRenderer().render(tiny)) == tiny


def test_the_orjson_parser_reads_what_drfs_json_parser_reads():
    import io

    bodies = [
        b'{"winner": 5, "spans": [{"candidate": 5, "start": 0.5, "end": 3, "note": "\\u00e9 \xc3\xa9"}]}',
        b'{"winner": 123456789012345678901234567890}',  # past 64 bits: DRF's answer, then the serializer's
        b'{"winner": 1, "winner": 2}',
        b'{"rationale": "order 1234567890123456789", "winner": 3}',
    ]
    for body in bodies:
        assert OrjsonParser().parse(io.BytesIO(body)) == JSONParser().parse(io.BytesIO(body))
    for bad in (b'{"winner": NaN}', b'{"winner": ', b"\xff"):
        with pytest.raises(ParseError):
            JSONParser().parse(io.BytesIO(bad))
        with pytest.raises(ParseError):
            OrjsonParser().parse(io.BytesIO(bad))


# --- Logging -----------------------------------------------------------------------------------------------------


def test_gunicorn_writes_no_access_log_unless_asked(monkeypatch):
    monkeypatch.delenv("WEB_ACCESS_LOG", raising=False)
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.py"))["accesslog"] is None
    monkeypatch.setenv("WEB_ACCESS_LOG", "-")
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.py"))["accesslog"] == "-"


def test_the_hot_views_keep_their_content_types():
    from annotation.api.views import JudgmentCreateView, NextView

    assert NextView().get_renderers()[0].media_type == "application/json"
    assert [p.media_type for p in JudgmentCreateView().get_parsers()] == [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ]
