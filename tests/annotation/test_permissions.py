"""Who may call which endpoint (DESIGN §8), checked for every route of the API.

``ACCESS`` below is the contract: one row per endpoint and method with the least
a caller needs. Every row is called as each persona and the status compared with
what the row implies:

- anonymous callers get 401 (token authentication comes first, so DRF answers
  401 with ``WWW-Authenticate: Token``), except on public endpoints;
- a signed-in user who is not a member gets 404 on a project's endpoints, so a
  project's existence is not leaked (annotation.access);
- a member whose role is too low gets 403;
- everyone allowed gets the row's success status.

A test also compares the table's routes with those Django resolves under
``/api/v1/``: a new endpoint without a row fails it.
"""

import re
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import (
    AnnotatorExclusion,
    AnnotatorPause,
    Assignment,
    ExportJob,
    ImportJob,
    Judgment,
    Membership,
    Project,
    Role,
)
from annotation.quality.promotion import comparison_promote
from training.models import ModelVersion, Round

from ..factories import CandidateFactory, MembershipFactory, ProjectFactory, PromptFactory, UserFactory, make_comparison

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's

# What a row needs, beyond the project roles (Role.ANNOTATOR < RESEARCHER < ADMIN).
ANYONE = "anyone"
SIGNED_IN = "signed in"
MAY_CREATE_PROJECTS = "annotation.add_project"


@dataclass(frozen=True)
class Access:
    method: str
    route: str  # as written in annotation/api/urls.py
    needs: str  # ANYONE | SIGNED_IN | MAY_CREATE_PROJECTS | a Role (of the project the route points into)
    ok: int  # the status when the caller may

    def __str__(self):
        return f"{self.method} {self.route}"


# fmt: off
ACCESS = [
    Access("POST",   "auth/token/",                                ANYONE,              200),
    Access("DELETE", "auth/token/revoke/",                         SIGNED_IN,           204),
    Access("POST",   "auth/session/",                              ANYONE,              200),
    Access("POST",   "auth/session/end/",                          SIGNED_IN,           204),
    Access("GET",    "me/",                                        SIGNED_IN,           200),
    Access("GET",    "me/work/",                                   SIGNED_IN,           200),
    Access("GET",    "projects/",                                  SIGNED_IN,           200),
    Access("POST",   "projects/",                                  MAY_CREATE_PROJECTS, 201),
    Access("GET",    "projects/<int:pk>/",                         Role.ANNOTATOR,      200),
    Access("PATCH",  "projects/<int:pk>/",                         Role.ADMIN,          200),
    Access("DELETE", "projects/<int:pk>/",                         Role.ADMIN,          204),
    Access("GET",    "projects/<int:pk>/members/",                 Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/members/",                 Role.ADMIN,          201),
    Access("PATCH",  "projects/<int:pk>/members/<int:user_id>/",   Role.ADMIN,          200),
    Access("DELETE", "projects/<int:pk>/members/<int:user_id>/",   Role.ADMIN,          204),
    Access("GET",    "projects/<int:pk>/next/",                    Role.ANNOTATOR,      200),
    Access("GET",    "projects/<int:pk>/judgments/",               Role.ANNOTATOR,      200),
    Access("GET",    "projects/<int:pk>/comparisons/",             Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/comparisons/build/",       Role.RESEARCHER,     201),
    Access("GET",    "projects/<int:pk>/stats/",                   Role.RESEARCHER,     200),
    Access("GET",    "projects/<int:pk>/imports/",                 Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/imports/",                 Role.RESEARCHER,     201),
    Access("GET",    "imports/<int:pk>/",                          Role.RESEARCHER,     200),
    Access("POST",   "imports/<int:pk>/cancel/",                   Role.RESEARCHER,     200),
    Access("POST",   "imports/<int:pk>/retry/",                    Role.RESEARCHER,     200),
    Access("POST",   "comparisons/<int:pk>/judgments/",            Role.ANNOTATOR,      201),
    Access("POST",   "comparisons/<int:pk>/skip/",                 Role.ANNOTATOR,      204),
    Access("POST",   "comparisons/<int:pk>/release/",              Role.ANNOTATOR,      204),
    Access("GET",    "judgments/<int:pk>/",                        Role.ANNOTATOR,      200),
    Access("GET",    "projects/<int:pk>/rounds/",                  Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/rounds/",                  Role.ADMIN,          201),
    Access("GET",    "projects/<int:pk>/training-settings/",       Role.RESEARCHER,     200),
    Access("PUT",    "projects/<int:pk>/training-settings/",       Role.ADMIN,          200),
    Access("GET",    "rounds/<int:pk>/",                           Role.RESEARCHER,     200),
    Access("POST",   "rounds/<int:pk>/cancel/",                    Role.ADMIN,          200),
    Access("GET",    "projects/<int:pk>/model-versions/",          Role.RESEARCHER,     200),
    Access("GET",    "model-versions/<int:pk>/",                   Role.RESEARCHER,     200),
    Access("POST",   "model-versions/<int:pk>/activate/",          Role.ADMIN,          200),
    # The world's version is a reward model: a researcher is let in and told it is not a policy.
    Access("POST",   "model-versions/<int:pk>/sample/",            Role.RESEARCHER,     409),
    Access("GET",    "model-versions/<int:pk>/download/",          Role.RESEARCHER,     409),
    Access("GET",    "projects/<int:pk>/exports/",                 Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/exports/",                 Role.RESEARCHER,     202),
    Access("GET",    "projects/<int:pk>/exports/stream/",          Role.RESEARCHER,     200),
    Access("GET",    "exports/<int:pk>/",                          Role.RESEARCHER,     200),
    Access("GET",    "exports/<int:pk>/download/",                 Role.RESEARCHER,     200),
    Access("POST",   "exports/<int:pk>/cancel/",                   Role.RESEARCHER,     200),
    Access("POST",   "exports/<int:pk>/retry/",                    Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/label-imports/",           Role.RESEARCHER,     201),
    Access("GET",    "projects/<int:pk>/quality/",                 Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/quality/recompute/",       Role.RESEARCHER,     202),
    Access("POST",   "projects/<int:pk>/quality/annotators/<int:user_id>/exclusion/", Role.RESEARCHER, 200),
    Access("DELETE", "projects/<int:pk>/quality/annotators/<int:user_id>/exclusion/", Role.RESEARCHER, 200),
    Access("DELETE", "projects/<int:pk>/quality/annotators/<int:user_id>/pause/", Role.RESEARCHER, 200),
    Access("GET",    "projects/<int:pk>/quality/agreement/",       Role.RESEARCHER,     200),
    Access("GET",    "projects/<int:pk>/quality/gold/",            Role.RESEARCHER,     200),
    Access("POST",   "projects/<int:pk>/quality/gold/<int:comparison_id>/", Role.RESEARCHER, 200),
    Access("DELETE", "projects/<int:pk>/quality/gold/<int:comparison_id>/", Role.RESEARCHER, 200),
    # 409 for everyone allowed: this world has no span model (tests/rounds/test_spans.py covers the 200).
    Access("POST",   "projects/<int:pk>/span-scores/",             Role.RESEARCHER,     409),
]
# fmt: on

PERSONAS = ["anonymous", "outsider", "creator", "annotator", "researcher", "admin"]
ROLE_OF = {"annotator": Role.ANNOTATOR, "researcher": Role.RESEARCHER, "admin": Role.ADMIN}
RANK = {Role.ANNOTATOR: 1, Role.RESEARCHER: 2, Role.ADMIN: 3}


def expected_status(access: Access, persona: str) -> int:
    if access.needs == ANYONE:
        return access.ok
    if persona == "anonymous":
        return 401
    if access.needs == SIGNED_IN:
        return access.ok
    if access.needs == MAY_CREATE_PROJECTS:
        return access.ok if persona == "creator" else 403
    if persona not in ROLE_OF:
        return 404  # signed in, but not a member of the project the route points into
    return access.ok if RANK[ROLE_OF[persona]] >= RANK[access.needs] else 403


# --- The world every case runs in ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_passwords_and_a_fresh_cache(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # uploads from the import cases
    # The default hasher takes ~0.3 s a password and every case makes seven users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The token cache and the login throttle's counters live in the process-wide cache.
    cache.clear()
    yield
    cache.clear()


def _judge(comparison, user, key="k"):
    """The user is served the comparison (the top-priority one) and answers it."""
    claim = queue.comparison_claim(project_id=comparison.project_id, annotator_id=user.pk)
    assert claim is not None and claim.comparison_id == comparison.pk
    judgment, _ = judgment_submit(
        comparison_id=comparison.pk,
        annotator_id=user.pk,
        answer=JudgmentInput(winner=comparison.candidate_ids[0]),
        idempotency_key=key,
    )
    return judgment


@pytest.fixture
def world(project, annotator, researcher, admin, outsider, settings, tmp_path):
    creator = UserFactory(username="cleo")
    creator.user_permissions.add(Permission.objects.get(content_type__app_label="annotation", codename="add_project"))
    bob = UserFactory(username="bob")  # another annotator: the member the member endpoints act on
    MembershipFactory(project=project, user=bob, role=Role.ANNOTATOR)
    newcomer = UserFactory(username="nina")  # not yet a member: the one "add member" adds
    comparison = make_comparison(project, wanted=3, priority=10)  # the one /next/ serves first
    unbuilt = PromptFactory(project=project)  # candidates but no comparison yet: for "build"
    CandidateFactory(prompt=unbuilt)
    CandidateFactory(prompt=unbuilt)
    job = ImportJob.objects.create(project=project, kind="prompts", file_format="jsonl", file="imports/p.jsonl")
    artifact = tmp_path / "artifacts" / "reward-1"
    artifact.mkdir(parents=True)
    settings.TRAINING_ARTIFACTS_DIR = tmp_path / "artifacts"
    version = ModelVersion.objects.create(
        project=project, kind="reward", version=1, base_model="tiny", artifact_path="reward-1", judgment_snapshot_id="x"
    )
    training_round = Round.objects.create(project=project)  # queued: cancellable
    users = {
        "anonymous": None,
        "outsider": outsider,
        "creator": creator,
        "annotator": annotator,
        "researcher": researcher,
        "admin": admin,
    }
    return SimpleNamespace(
        project=project,
        comparison=comparison,
        job=job,
        bob=bob,
        newcomer=newcomer,
        users=users,
        version=version,
        training_round=training_round,
    )


def _is_member(world, user):
    return user is not None and Membership.objects.filter(project=world.project, user=user).exists()


# How each row is called: (world, user or None) → (path, keyword arguments for the client).
# A row's setup gives members what the call acts on (their own lease, their own judgment).


def _token(world, user):
    return "/api/v1/auth/token/", {"data": {"username": (user or world.bob).username, "password": PASSWORD}}


def _release(world, user):
    if _is_member(world, user):
        assert (
            queue.comparison_claim(project_id=world.project.pk, annotator_id=user.pk).comparison_id
            == world.comparison.pk
        )
    return f"/api/v1/comparisons/{world.comparison.pk}/release/", {}


def _submit(world, user):
    if _is_member(world, user):  # members answer what the queue served them
        assert (
            queue.comparison_claim(project_id=world.project.pk, annotator_id=user.pk).comparison_id
            == world.comparison.pk
        )
    return f"/api/v1/comparisons/{world.comparison.pk}/judgments/", {
        "data": {"winner": world.comparison.candidate_ids[0]},
        "HTTP_IDEMPOTENCY_KEY": "perm-1",
    }


def _judgment_detail(world, user):
    judgment = _judge(world.comparison, user if _is_member(world, user) else world.bob)
    return f"/api/v1/judgments/{judgment.pk}/", {}


def _import_upload(world, user):
    upload = SimpleUploadedFile("prompts.jsonl", b'{"id": "q1", "text": "What is 2 + 2?"}\n')
    return f"/api/v1/projects/{world.project.pk}/imports/", {
        "data": {"file": upload, "kind": "prompts"},
        "format": "multipart",
    }


def _round_start(world, user):
    # Something to train on, and a backbone setting (the round is only queued here; nothing trains).
    _judge(world.comparison, world.bob, key="round")
    Project.objects.filter(pk=world.project.pk).update(training_settings={"backbone": "tiny-backbone-path"})
    Round.objects.filter(pk=world.training_round.pk).update(status="cancelled")
    return f"/api/v1/projects/{world.project.pk}/rounds/", {}


def _export_job(world):
    """A finished export of the world's project (its archive in the test's media folder)."""
    job = ExportJob.objects.filter(project=world.project).first()
    if job is None:
        job = ExportJob.objects.create(project=world.project, shape="pairs", file_format="jsonl", status="succeeded")
        job.file.save("perm.zip", ContentFile(b"PK\x05\x06" + bytes(18)))
    return job


def _failed(world, model, **fields):
    """A job of the world's project that failed: the one a retry puts back in the queue."""
    return model.objects.create(project=world.project, status="failed", **fields)


def _label_import(world, user):
    upload = SimpleUploadedFile("pairs.jsonl", b'{"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}\n')
    return f"/api/v1/projects/{world.project.pk}/label-imports/", {
        "data": {"file": upload, "kind": "pairs"},
        "format": "multipart",
    }


def _project_path(suffix=""):
    return lambda world, user: (f"/api/v1/projects/{world.project.pk}/{suffix.format(bob=world.bob.pk)}", {})


def _bob_excluded(world, user):
    """Restoring needs a standing exclusion: bob's."""
    AnnotatorExclusion.objects.get_or_create(project=world.project, annotator=world.bob, restored_at=None)
    return f"/api/v1/projects/{world.project.pk}/quality/annotators/{world.bob.pk}/exclusion/", {}


def _bob_paused(world, user):
    """Resuming needs a standing pause: bob's."""
    AnnotatorPause.objects.get_or_create(
        project=world.project, annotator=world.bob, resumed_at=None, defaults={"reason": "test", "gold_judged": 10}
    )
    return f"/api/v1/projects/{world.project.pk}/quality/annotators/{world.bob.pk}/pause/", {}


def _unanimous(world, user):
    """Promoting needs a comparison answered alike by enough people: bob, anna and rita answer the world's one."""
    for key, judge in enumerate((world.bob, world.users["annotator"], world.users["researcher"])):
        _judge(world.comparison, judge, key=f"gold-{key}")
    return f"/api/v1/projects/{world.project.pk}/quality/gold/{world.comparison.pk}/", {}


def _promoted(world, user):
    """Demoting needs a comparison promoted to gold."""
    path = _unanimous(world, user)
    comparison_promote(project=world.project, comparison_id=world.comparison.pk, actor=world.users["admin"])
    return path


def _with_body(make_path, body):
    def call(world, user):
        path, kwargs = make_path(world, user)
        return path, {**kwargs, "data": body(world) if callable(body) else body}

    return call


def _comparison_path(suffix):
    return lambda world, user: (f"/api/v1/comparisons/{world.comparison.pk}/{suffix}", {})


def _member_path(world, user):
    return f"/api/v1/projects/{world.project.pk}/members/{world.bob.pk}/", {}


CALLS = {
    ("POST", "auth/token/"): _token,
    ("DELETE", "auth/token/revoke/"): lambda world, user: ("/api/v1/auth/token/revoke/", {}),
    ("POST", "auth/session/"): lambda world, user: ("/api/v1/auth/session/", _token(world, user)[1]),
    ("POST", "auth/session/end/"): lambda world, user: ("/api/v1/auth/session/end/", {}),
    ("GET", "me/"): lambda world, user: ("/api/v1/me/", {}),
    ("GET", "me/work/"): lambda world, user: ("/api/v1/me/work/", {}),
    ("GET", "projects/"): lambda world, user: ("/api/v1/projects/", {}),
    ("POST", "projects/"): lambda world, user: ("/api/v1/projects/", {"data": {"name": "Fresh"}}),
    ("GET", "projects/<int:pk>/"): _project_path(),
    ("PATCH", "projects/<int:pk>/"): _with_body(_project_path(), {"name": "Renamed"}),
    ("DELETE", "projects/<int:pk>/"): _project_path(),
    ("GET", "projects/<int:pk>/members/"): _project_path("members/"),
    ("POST", "projects/<int:pk>/members/"): _with_body(
        _project_path("members/"), lambda world: {"username": world.newcomer.username, "role": "annotator"}
    ),
    ("PATCH", "projects/<int:pk>/members/<int:user_id>/"): _with_body(_member_path, {"role": "researcher"}),
    ("DELETE", "projects/<int:pk>/members/<int:user_id>/"): _member_path,
    ("GET", "projects/<int:pk>/next/"): _project_path("next/"),
    ("GET", "projects/<int:pk>/judgments/"): _project_path("judgments/"),
    ("GET", "projects/<int:pk>/comparisons/"): _project_path("comparisons/"),
    ("POST", "projects/<int:pk>/comparisons/build/"): _with_body(
        _project_path("comparisons/build/"), {"mode": "pairs"}
    ),
    ("GET", "projects/<int:pk>/stats/"): _project_path("stats/"),
    ("GET", "projects/<int:pk>/imports/"): _project_path("imports/"),
    ("POST", "projects/<int:pk>/imports/"): _import_upload,
    ("GET", "imports/<int:pk>/"): lambda world, user: (f"/api/v1/imports/{world.job.pk}/", {}),
    ("POST", "imports/<int:pk>/cancel/"): lambda world, user: (f"/api/v1/imports/{world.job.pk}/cancel/", {}),
    ("POST", "imports/<int:pk>/retry/"): lambda world, user: (
        f"/api/v1/imports/{_failed(world, ImportJob, kind='prompts', file_format='jsonl').pk}/retry/",
        {},
    ),
    ("POST", "comparisons/<int:pk>/judgments/"): _submit,
    ("POST", "comparisons/<int:pk>/skip/"): _comparison_path("skip/"),
    ("POST", "comparisons/<int:pk>/release/"): _release,
    ("GET", "judgments/<int:pk>/"): _judgment_detail,
    ("GET", "projects/<int:pk>/rounds/"): _project_path("rounds/"),
    ("POST", "projects/<int:pk>/rounds/"): _round_start,
    ("GET", "rounds/<int:pk>/"): lambda world, user: (f"/api/v1/rounds/{world.training_round.pk}/", {}),
    ("POST", "rounds/<int:pk>/cancel/"): lambda world, user: (f"/api/v1/rounds/{world.training_round.pk}/cancel/", {}),
    ("GET", "projects/<int:pk>/model-versions/"): _project_path("model-versions/"),
    ("POST", "projects/<int:pk>/span-scores/"): _with_body(_project_path("span-scores/"), {"text": "Hello there."}),
    ("GET", "model-versions/<int:pk>/"): lambda world, user: (f"/api/v1/model-versions/{world.version.pk}/", {}),
    ("POST", "model-versions/<int:pk>/sample/"): lambda world, user: (
        f"/api/v1/model-versions/{world.version.pk}/sample/",
        {"data": {"prompt": "Hello?"}},
    ),
    ("GET", "model-versions/<int:pk>/download/"): lambda world, user: (
        f"/api/v1/model-versions/{world.version.pk}/download/",
        {},
    ),
    ("POST", "model-versions/<int:pk>/activate/"): lambda world, user: (
        f"/api/v1/model-versions/{world.version.pk}/activate/",
        {},
    ),
    ("GET", "projects/<int:pk>/exports/"): _project_path("exports/"),
    ("POST", "projects/<int:pk>/exports/"): _with_body(
        _project_path("exports/"), {"shape": "pairs", "file_format": "jsonl"}
    ),
    ("GET", "projects/<int:pk>/exports/stream/"): _project_path("exports/stream/?shape=pairs&file_format=csv"),
    ("GET", "exports/<int:pk>/"): lambda world, user: (f"/api/v1/exports/{_export_job(world).pk}/", {}),
    ("POST", "projects/<int:pk>/label-imports/"): _label_import,
    ("POST", "exports/<int:pk>/cancel/"): lambda world, user: (
        f"/api/v1/exports/{ExportJob.objects.create(project=world.project, shape='pairs', file_format='jsonl').pk}"
        "/cancel/",
        {},
    ),
    ("POST", "exports/<int:pk>/retry/"): lambda world, user: (
        f"/api/v1/exports/{_failed(world, ExportJob, shape='pairs', file_format='jsonl').pk}/retry/",
        {},
    ),
    ("GET", "projects/<int:pk>/training-settings/"): _project_path("training-settings/"),
    ("PUT", "projects/<int:pk>/training-settings/"): _with_body(
        _project_path("training-settings/"), {"settings": {"epochs": 1}}
    ),
    ("GET", "projects/<int:pk>/quality/"): _project_path("quality/"),
    ("POST", "projects/<int:pk>/quality/recompute/"): _project_path("quality/recompute/"),
    ("POST", "projects/<int:pk>/quality/annotators/<int:user_id>/exclusion/"): _with_body(
        _project_path("quality/annotators/{bob}/exclusion/"), {"reason": "test"}
    ),
    ("DELETE", "projects/<int:pk>/quality/annotators/<int:user_id>/exclusion/"): _bob_excluded,
    ("DELETE", "projects/<int:pk>/quality/annotators/<int:user_id>/pause/"): _bob_paused,
    ("GET", "projects/<int:pk>/quality/agreement/"): _project_path("quality/agreement/"),
    ("GET", "projects/<int:pk>/quality/gold/"): _project_path("quality/gold/"),
    ("POST", "projects/<int:pk>/quality/gold/<int:comparison_id>/"): _unanimous,
    ("DELETE", "projects/<int:pk>/quality/gold/<int:comparison_id>/"): _promoted,
    ("GET", "exports/<int:pk>/download/"): lambda world, user: (
        f"/api/v1/exports/{_export_job(world).pk}/download/",
        {},
    ),
}


def _client(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
    return client


# --- The table, walked ------------------------------------------------------------------------------


def _resolved_api_routes():
    """(METHOD, route) for every view Django resolves under /api/v1/, all methods it implements."""
    apis = [p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "api/v1/"]
    assert apis, "nothing is mounted under /api/v1/"

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
                continue
            assert isinstance(pattern, URLPattern)
            view = pattern.callback.view_class
            for method in view.http_method_names:
                if method not in ("options", "head", "trace") and hasattr(view, method):
                    yield method.upper(), prefix + str(pattern.pattern)

    return {route for api in apis for route in walk(api.url_patterns, "")}


def _without_converters(route: str) -> str:
    """Drop the converters (projects/<int:pk>/ → projects/<pk>/): a route keeps its row when one changes."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", route)


def test_every_api_route_has_exactly_one_row_in_the_access_table():
    table = [(a.method, a.route) for a in ACCESS]
    assert len(table) == len(set(table)), "a route is listed twice"
    assert {(m, _without_converters(r)) for m, r in table} == {
        (m, _without_converters(r)) for m, r in _resolved_api_routes()
    }
    assert set(CALLS) == set(table)


@pytest.mark.parametrize(
    ("access", "persona"),
    [(access, persona) for access in ACCESS for persona in PERSONAS],
    ids=[f"{access} as {persona}" for access in ACCESS for persona in PERSONAS],
)
def test_each_endpoint_answers_each_persona_as_the_access_table_says(world, access, persona):
    user = world.users[persona]
    path, kwargs = CALLS[(access.method, access.route)](world, user)
    kwargs.setdefault("format", "json")
    response = getattr(_client(user), access.method.lower())(path, **kwargs)
    content = b"".join(response.streaming_content) if response.streaming else response.content  # downloads stream
    body = content.decode(errors="replace")[:500]
    assert response.status_code == expected_status(access, persona), body
    if response.status_code >= 400:
        message = response.json().get("message")
        assert isinstance(message, str) and message, body


def test_an_anonymous_caller_is_told_to_send_a_token(api, project):
    response = api.get(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["message"]


# --- Annotators see their own labels only ---------------------------------------------------------


@pytest.fixture
def two_judgments(project, annotator):
    bob = UserFactory(username="bob")
    MembershipFactory(project=project, user=bob, role=Role.ANNOTATOR)
    comparison = make_comparison(project, wanted=3)
    return SimpleNamespace(mine=_judge(comparison, annotator, "a"), bobs=_judge(comparison, bob, "b"), bob=bob)


def _ids(response):
    assert response.status_code == 200, response.json()
    return {j["id"] for j in response.json()["results"]}


def test_an_annotator_lists_only_their_own_judgments(api, project, annotator, two_judgments):
    client = api.as_user(annotator)
    url = f"/api/v1/projects/{project.pk}/judgments/"
    assert _ids(client.get(url)) == {two_judgments.mine.pk}
    # Asking for someone else's by filter gives nothing, not their labels.
    assert _ids(client.get(url, {"annotator": two_judgments.bob.pk})) == set()
    assert _ids(client.get(url, {"comparison": two_judgments.bobs.comparison_id})) == {two_judgments.mine.pk}


def test_an_annotator_cannot_read_other_peoples_judgments(api, annotator, two_judgments):
    client = api.as_user(annotator)
    assert client.get(f"/api/v1/judgments/{two_judgments.mine.pk}/").status_code == 200
    response = client.get(f"/api/v1/judgments/{two_judgments.bobs.pk}/")
    assert response.status_code == 404
    assert "bob" not in response.content.decode()


@pytest.mark.parametrize("persona", ["researcher", "admin"])
def test_researchers_and_admins_see_everyones_judgments(request, api, project, two_judgments, persona):
    client = api.as_user(request.getfixturevalue(persona))
    both = {two_judgments.mine.pk, two_judgments.bobs.pk}
    assert _ids(client.get(f"/api/v1/projects/{project.pk}/judgments/")) == both
    assert _ids(client.get(f"/api/v1/projects/{project.pk}/judgments/", {"annotator": two_judgments.bob.pk})) == {
        two_judgments.bobs.pk
    }
    response = client.get(f"/api/v1/judgments/{two_judgments.bobs.pk}/")
    assert response.status_code == 200
    assert response.json()["annotator_username"] == "bob"


@pytest.mark.parametrize("suffix", ["stats/", "comparisons/", "members/", "imports/"])
def test_an_annotator_cannot_see_stats_comparisons_members_or_imports(api, project, annotator, suffix):
    make_comparison(project)
    response = api.as_user(annotator).get(f"/api/v1/projects/{project.pk}/{suffix}")
    assert response.status_code == 403
    assert "researcher" in response.json()["message"]


def test_a_user_lists_only_the_projects_they_belong_to(api, project, annotator, outsider):
    other = ProjectFactory()
    listed = api.as_user(annotator).get("/api/v1/projects/").json()["results"]
    assert [(p["id"], p["my_role"]) for p in listed] == [(project.pk, "annotator")]
    assert other.pk not in {p["id"] for p in listed}
    assert api.as_user(outsider).get("/api/v1/projects/").json()["results"] == []


def test_an_annotator_of_one_project_cannot_touch_another(api, project, annotator):
    other = ProjectFactory()
    stranger = UserFactory(username="sam")
    MembershipFactory(project=other, user=stranger, role=Role.ADMIN)
    theirs = make_comparison(other, wanted=3)
    their_judgment = _judge(theirs, stranger)
    their_job = ImportJob.objects.create(project=other, kind="prompts", file_format="jsonl", file="imports/o.jsonl")
    client = api.as_user(annotator)

    calls = [
        ("get", f"/api/v1/projects/{other.pk}/", {}),
        ("patch", f"/api/v1/projects/{other.pk}/", {"name": "Mine now"}),
        ("delete", f"/api/v1/projects/{other.pk}/", None),
        ("get", f"/api/v1/projects/{other.pk}/next/", None),
        ("get", f"/api/v1/projects/{other.pk}/judgments/", None),
        ("get", f"/api/v1/projects/{other.pk}/stats/", None),
        ("post", f"/api/v1/projects/{other.pk}/members/", {"username": "anna", "role": "admin"}),
        ("delete", f"/api/v1/projects/{other.pk}/members/{stranger.pk}/", None),
        ("post", f"/api/v1/comparisons/{theirs.pk}/judgments/", {"winner": theirs.candidate_ids[0]}),
        ("post", f"/api/v1/comparisons/{theirs.pk}/skip/", None),
        ("post", f"/api/v1/comparisons/{theirs.pk}/release/", None),
        ("get", f"/api/v1/judgments/{their_judgment.pk}/", None),
        ("get", f"/api/v1/imports/{their_job.pk}/", None),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, body, format="json", HTTP_IDEMPOTENCY_KEY="x")
        assert response.status_code == 404, (method, url, response.content)

    assert Project.objects.filter(pk=other.pk, name=other.name).exists()
    assert not Membership.objects.filter(project=other, user=annotator).exists()
    assert Membership.objects.filter(project=other, user=stranger).exists()
    assert not Judgment.objects.filter(project=other, annotator=annotator).exists()
    assert not Assignment.objects.filter(project=other, annotator=annotator).exists()


@pytest.mark.parametrize("route", ["comparisons/{}/skip/", "judgments/{}/", "imports/{}/"])
def test_an_outsiders_404_does_not_reveal_whether_the_object_exists(world, route):
    existing = {
        "comparisons/{}/skip/": world.comparison.pk,
        "judgments/{}/": _judge(world.comparison, world.bob).pk,
        "imports/{}/": world.job.pk,
    }[route]
    client = _client(world.users["outsider"])
    method = client.post if route.endswith("skip/") else client.get
    there = method("/api/v1/" + route.format(existing))
    missing = method("/api/v1/" + route.format(existing + 1000))
    assert (there.status_code, missing.status_code) == (404, 404)
    assert there.json() == missing.json()


def test_the_add_project_permission_grants_no_access_to_existing_projects(world):
    client = _client(world.users["creator"])
    assert client.get(f"/api/v1/projects/{world.project.pk}/").status_code == 404
    assert client.get("/api/v1/projects/").json()["results"] == []
