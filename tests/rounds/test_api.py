"""The training API per persona: researchers read, admins start, cancel and activate, annotators 403,
outsiders 404; errors in the API's one shape."""

import io
import json

import pytest
from django.core.management import call_command

from training import rounds
from training.models import ModelVersion, Round, RoundStatus

from .conftest import add_judgments, previous_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def with_data(trainable):
    add_judgments(trainable, 6)
    return trainable


def test_an_admin_starts_a_round_and_it_is_queued_for_the_gpu_worker(
    api, admin, with_data, django_capture_on_commit_callbacks, sent_rounds
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(admin).post(
            f"/api/v1/projects/{with_data.pk}/rounds/", {"config": {"epochs": 1}}, format="json"
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["trigger"], body["triggered_by"], body["config"]["epochs"]) == (
        "queued",
        "manual",
        "adam",
        1,
    )
    assert sent_rounds == [body["id"]]


def test_a_second_round_while_one_is_live_is_409(api, admin, with_data):
    assert api.as_user(admin).post(f"/api/v1/projects/{with_data.pk}/rounds/", {}, format="json").status_code == 201
    response = api.post(f"/api/v1/projects/{with_data.pk}/rounds/", {}, format="json")
    assert response.status_code == 409
    assert "still queued" in response.json()["message"] and response.json()["errors"] == {}


def test_bad_settings_name_the_field(api, admin, with_data):
    response = api.as_user(admin).post(
        f"/api/v1/projects/{with_data.pk}/rounds/",
        {"config": {"epochs": -1, "colour": "red", "seed": -1}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"config.epochs", "config.colour", "config.seed"}
    assert not Round.objects.exists()


@pytest.mark.parametrize(
    ("persona", "read", "write"),
    [("admin", 200, True), ("researcher", 200, False), ("annotator", 403, False), ("outsider", 404, False)],
)
def test_each_persona_gets_what_its_role_allows(api, request, with_data, persona, read, write):
    user = request.getfixturevalue(persona)
    live = Round.objects.create(project=with_data, status=RoundStatus.RUNNING, step="training", progress=0.5)
    version = previous_version(with_data)
    client = api.as_user(user)
    for url in (
        f"/api/v1/projects/{with_data.pk}/rounds/",
        f"/api/v1/rounds/{live.pk}/",
        f"/api/v1/projects/{with_data.pk}/model-versions/",
        f"/api/v1/model-versions/{version.pk}/",
    ):
        response = client.get(url)
        assert response.status_code == read, url
        assert response.status_code == 200 or set(response.json()) == {"message", "errors"}

    denied = 403 if read == 200 or read == 403 else 404
    start = client.post(f"/api/v1/projects/{with_data.pk}/rounds/", {}, format="json")
    cancel = client.post(f"/api/v1/rounds/{live.pk}/cancel/")
    if write:
        assert start.status_code == 409  # one is live
        assert cancel.status_code == 202 and cancel.json()["cancel_requested"]
    else:
        assert (start.status_code, cancel.status_code) == (denied, denied)
        live.refresh_from_db()
        assert not live.cancel_requested


def test_a_researcher_watches_progress_and_the_log_tail(api, researcher, with_data):
    live = Round.objects.create(
        project=with_data, status=RoundStatus.RUNNING, step="training", progress=0.42, log_tail="step 3/9 loss 0.6"
    )
    body = api.as_user(researcher).get(f"/api/v1/rounds/{live.pk}/").json()
    assert (body["status"], body["step"], body["progress"], body["log_tail"]) == (
        "running",
        "training",
        0.42,
        "step 3/9 loss 0.6",
    )


def test_cancelling_a_queued_round_is_immediate_and_a_finished_one_is_409(api, admin, with_data):
    started = rounds.round_start(project=with_data, enqueue=False)
    response = api.as_user(admin).post(f"/api/v1/rounds/{started.pk}/cancel/")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    again = api.post(f"/api/v1/rounds/{started.pk}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["message"]


def test_an_admin_rolls_back_to_an_older_version(api, admin, researcher, with_data, settings):
    older = previous_version(with_data, artifact_path="v1")
    newer = previous_version(with_data, version=2, artifact_path="v2", is_active=False)
    ModelVersion.objects.filter(pk=older.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=newer.pk).update(is_active=True)
    for rel in ("v1", "v2"):
        (settings.TRAINING_ARTIFACTS_DIR / rel).mkdir(parents=True)

    assert api.as_user(researcher).post(f"/api/v1/model-versions/{older.pk}/activate/").status_code == 403
    response = api.as_user(admin).post(f"/api/v1/model-versions/{older.pk}/activate/")
    assert response.status_code == 200 and response.json()["is_active"]
    newer.refresh_from_db()
    assert not newer.is_active
    listed = api.get(f"/api/v1/projects/{with_data.pk}/model-versions/").json()["results"]
    assert [(v["version"], v["is_active"]) for v in listed] == [(2, False), (1, True)]


def test_a_version_whose_artifact_is_gone_cannot_be_activated(api, admin, with_data):
    lost = previous_version(with_data, artifact_path="nowhere", is_active=False)
    response = api.as_user(admin).post(f"/api/v1/model-versions/{lost.pk}/activate/")
    assert response.status_code == 409 and "missing" in response.json()["message"]


def test_unknown_ids_are_404_in_the_error_shape(api, admin):
    for url in ("/api/v1/rounds/999999/", "/api/v1/model-versions/999999/"):
        response = api.as_user(admin).get(url)
        assert response.status_code == 404 and set(response.json()) == {"message", "errors"}


def test_the_openapi_schema_documents_the_training_api_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    paths = json.loads(out.getvalue())["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/projects/{id}/rounds/"])
    assert "/api/v1/model-versions/{id}/activate/" in paths


def test_the_app_never_reaches_for_the_model_hub_unless_told_to(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    # A fresh process without the test suite's own offline switches: the settings must set them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(SECRET_KEY="x", TANDEM_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings")
    code = "import os, django; django.setup(); print(os.environ['HF_HUB_OFFLINE'], os.environ['HF_DATASETS_OFFLINE'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True
    )
    assert out.stdout.split() == ["1", "1"], out.stderr


def test_an_admin_replaces_the_training_settings_and_bad_ones_are_named_and_not_saved(api, admin, project):
    url = f"/api/v1/projects/{project.pk}/training-settings/"
    client = api.as_user(admin)
    body = client.get(url).json()
    described = {f["name"]: f for f in body["fields"]}
    assert described["tie_policy"]["choices"] == ["drop", "soft"] and described["epochs"]["default"] == 2.0
    assert "Passes over the train pairs" in described["epochs"]["help"]

    bad = client.put(url, {"settings": {"epochs": 0, "tie_policy": "coin", "colour": "red"}}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"settings.epochs", "settings.tie_policy", "settings.colour"}
    assert bad.json()["errors"]["settings.epochs"] == ["Must be greater than 0."]
    project.refresh_from_db()
    assert project.training_settings == {}

    good = client.put(url, {"settings": {"backbone": " builtin:minilm ", "epochs": 3}}, format="json")
    assert good.status_code == 200, good.json()
    project.refresh_from_db()
    assert project.training_settings == {"backbone": "builtin:minilm", "epochs": 3.0}
    assert good.json()["settings"] == project.training_settings


def test_the_project_endpoint_cannot_slip_unchecked_training_settings_past_the_checked_one(api, admin, project):
    client = api.as_user(admin)
    response = client.patch(f"/api/v1/projects/{project.pk}/", {"training_settings": {"epochs": 0}}, format="json")
    assert response.status_code == 200 and response.json()["training_settings"] == {}
    project.refresh_from_db()
    assert project.training_settings == {}


@pytest.mark.parametrize(
    ("persona", "read", "write"), [("researcher", 200, 403), ("annotator", 403, 403), ("outsider", 404, 404)]
)
def test_only_admins_change_the_training_settings(api, request, project, persona, read, write):
    url = f"/api/v1/projects/{project.pk}/training-settings/"
    client = api.as_user(request.getfixturevalue(persona))
    assert client.get(url).status_code == read
    assert client.put(url, {"settings": {"epochs": 1}}, format="json").status_code == write
    project.refresh_from_db()
    assert project.training_settings == {}
