"""The OpenAPI schema is the API's contract (DESIGN §7): it must generate cleanly,
and the running API must keep it: no generated request makes it fail (5xx), every
refusal is our error shape, JSON with a ``message`` a person can act on, and every
response body matches the schema documented for its status code."""

import io
import json
from contextlib import contextmanager

import hypothesis
import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import ExportJob, ImportJob, Role
from training.models import ModelVersion, Round

from ..factories import CandidateFactory, MembershipFactory, PromptFactory, UserFactory, make_comparison

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 25, schemathesis.GenerationMode.NEGATIVE: 10}


@pytest.fixture(autouse=True)
def _fast_passwords(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path  # uploads the import operation receives


def test_the_openapi_schema_generates_and_validates_without_warnings():
    out = io.StringIO()
    # --fail-on-warn turns every drf-spectacular warning (an unresolvable type, a
    # view it cannot introspect, a name collision) into an error; --validate checks
    # the result against the OpenAPI 3 JSON schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    schema = json.loads(out.getvalue())
    assert schema["openapi"].startswith("3.")
    assert all(path.startswith("/api/v1/") for path in schema["paths"])
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_served_schema_is_the_generated_one(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    out = io.StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    assert json.loads(response.content) == json.loads(out.getvalue())


# --- What the property-based run below found, pinned as plain examples ---------------------------------------

TOO_BIG = 2**64  # above any database integer


@pytest.mark.parametrize("path", ["/api/v1/projects/-1/", "/api/v1/judgments/abc/", "/api/v1/no-such-thing/"])
def test_an_api_path_that_matches_no_route_gets_a_json_404(api, annotator, path):
    response = api.as_user(annotator).get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/projects/{big}/"),
        ("delete", "/api/v1/projects/{project}/members/{big}/"),
        ("get", "/api/v1/judgments/{big}/"),
        ("post", "/api/v1/comparisons/{big}/skip/"),
        ("get", "/api/v1/imports/{big}/"),
    ],
)
def test_an_id_too_big_for_the_database_is_not_found(api, project, admin, method, path):
    client = api.as_user(admin)
    client.raise_request_exception = False  # see the 500 the way a caller would
    response = getattr(client, method)(path.format(big=TOO_BIG, project=project.pk))
    assert response.status_code == 404
    assert response.json()["message"]


def test_filtering_judgments_by_an_id_too_big_for_the_database_is_not_a_server_error(api, project, admin):
    client = api.as_user(admin)
    client.raise_request_exception = False
    response = client.get(f"/api/v1/projects/{project.pk}/judgments/", {"annotator": str(TOO_BIG)})
    # Either refused naming the filter, or nobody's judgments: never a 500, never everyone's.
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["results"] == []
    else:
        assert "annotator" in response.json()["errors"]


@pytest.mark.parametrize("name", ["annotator", "comparison"])
def test_a_judgment_filter_that_is_not_a_number_is_refused_naming_the_filter(api, project, admin, name):
    client = api.as_user(admin)
    client.raise_request_exception = False
    response = client.get(f"/api/v1/projects/{project.pk}/judgments/", {name: "²"})
    assert response.status_code == 400
    assert name in response.json()["errors"]


# --- Property-based run against the live schema -------------------------------------------------------------


@contextmanager
def _in_process_requests():
    """Let WSGI requests share the test's database connection and transaction.

    Django closes "old" connections when a request starts and ends; inside the
    test's transaction that would drop it. Django's own test client disconnects
    these handlers for the same reason.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(settings, tmp_path):
    """A project with an admin (who calls with a token), an annotator with a judgment,
    a few comparisons, a prompt with unbuilt candidates and an import job."""
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]  # werkzeug's test client says Host: localhost
    admin = UserFactory(username="adam")
    admin.user_permissions.add(Permission.objects.get(content_type__app_label="annotation", codename="add_project"))
    bob = UserFactory(username="bob")
    UserFactory(username="nina")  # exists, member of nothing: "add member" can succeed
    from ..factories import ProjectFactory

    project = ProjectFactory()
    MembershipFactory(project=project, user=admin, role=Role.ADMIN)
    MembershipFactory(project=project, user=bob, role=Role.ANNOTATOR)
    comparisons = [make_comparison(project, wanted=3, priority=i) for i in range(3)]
    comparisons[0].priority = 10
    comparisons[0].save()
    assert queue.comparison_claim(project_id=project.pk, annotator_id=bob.pk).comparison_id == comparisons[0].pk
    judgment, _ = judgment_submit(
        comparison_id=comparisons[0].pk,
        annotator_id=bob.pk,
        answer=JudgmentInput(winner=comparisons[0].candidate_ids[0]),
        idempotency_key="seed",
    )
    prompt = PromptFactory(project=project)
    CandidateFactory(prompt=prompt)
    CandidateFactory(prompt=prompt)
    job = ImportJob.objects.create(project=project, kind="prompts", file_format="jsonl", file="imports/p.jsonl")
    version = ModelVersion.objects.create(
        project=project, kind="reward", version=1, base_model="tiny", artifact_path="missing", judgment_snapshot_id="x"
    )
    training_round = Round.objects.create(project=project, status="succeeded", model_version=version)
    settings.MEDIA_ROOT = tmp_path  # the export's archive
    export = ExportJob.objects.create(project=project, shape="pairs", file_format="jsonl", status="succeeded")
    export.file.save("export.zip", ContentFile(b"PK\x05\x06" + bytes(18)))
    return {
        "token": Token.objects.create(user=admin).key,
        # Real ids for each path parameter, by the path's first segment after /api/v1/.
        "ids": {
            "projects": [project.pk],
            "comparisons": [c.pk for c in comparisons],
            "judgments": [judgment.pk],
            "imports": [job.pk],
            "rounds": [training_round.pk],
            "model-versions": [version.pk],
            "exports": [export.pk],
            "user_id": [admin.pk, bob.pk],
        },
    }


def _real_ids(path_template: str, ids: dict) -> dict:
    resource = path_template.removeprefix("/api/v1/").split("/")[0]
    real = {}
    if "{id}" in path_template:
        real["id"] = ids[resource]
    if "{user_id}" in path_template:
        real["user_id"] = ids["user_id"]
    return real


def _squeeze(text: str) -> str:
    return " ".join(text.split())[:120]


def _problem(response) -> tuple[str, str] | None:
    """(what is wrong, detail) for a response that breaks the contract, else None."""
    if response.status_code >= 500:
        return f"{response.status_code}: server error", _squeeze(response.text)
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            return f"{response.status_code}: body is not JSON", _squeeze(response.text)
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message.strip():
            return f"{response.status_code}: no non-empty 'message'", repr(body)[:200]
    return None


def _schema_mismatch(case, response) -> tuple[str, str] | None:
    """A response whose body does not match what the schema documents for its status code."""
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except FailureGroup as group:
        return f"{response.status_code}: body does not match the schema", _squeeze(str(group.exceptions[0]))
    return None


def _explore(operation, mode, *, real: dict, headers: dict, problems: dict) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: a failure here is reproducible
        phases=[Phase.explicit, Phase.generate, Phase.target],  # no shrinking: report, don't minimise
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data):
        # Half the time, point the path at real objects of the seeded project,
        # so the handlers behind the lookups run and not only the 404s.
        for name, choices in real.items():
            if data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(choices), label=name)
        # Side effects (DELETE project, token revoke, membership changes, claims,
        # judgments, imports) would change what later examples and operations see:
        # each example runs in a savepoint rolled back after it, so every one starts
        # from the seeded project and no operation has to be skipped or run in a
        # particular order. The cache holds the login throttle's counters and
        # cached tokens: cleared too.
        cache.clear()
        with transaction.atomic():
            response = case.call(headers=headers)
            transaction.set_rollback(True)
        problem = _problem(response) or _schema_mismatch(case, response)
        if problem:
            what, detail = problem
            # The first example of each kind of problem per operation.
            problems.setdefault((operation.label, what), f"{mode.value}: {case.formatted_path} → {detail}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # An operation with no parameters and no body has no invalid input to make.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise


@pytest.mark.slow
def test_generated_requests_never_fail_the_server_and_every_refusal_has_a_message(seeded):
    app = get_wsgi_application()
    problems = {}
    with _in_process_requests():
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 20
        headers = {"Authorization": f"Token {seeded['token']}"}
        for operation in operations:
            for mode in MAX_EXAMPLES:
                real = _real_ids(operation.path, seeded["ids"])
                _explore(operation, mode, real=real, headers=headers, problems=problems)

    # Every operation is explored before failing: one line per operation and kind of problem.
    assert not problems, "\n".join(
        f"{op} — {what} — e.g. {example}" for (op, what), example in sorted(problems.items())
    )
