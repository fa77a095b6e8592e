"""Rounds on real Celery workers over the configured broker (Redis in CI, the embedded file transport locally)
and the real database: the happy path through the API, and a worker killed with SIGKILL mid-training."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.utils import timezone

from annotation.models import Comparison, Split
from config.celery import app
from tests.factories import PromptFactory
from training import progress, rounds
from training.models import ModelVersion, Round, RoundStatus
from training.registry import artifact_location
from training.tasks import round_run_task

from ..workers import database_url
from .conftest import add_judgments, loop_settings, previous_version

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def wait_for(round_id: int, done, timeout: float = 90) -> Round:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = Round.objects.get(pk=round_id)
        if done(current):
            return current
        time.sleep(0.1)
    raise AssertionError(f"round {round_id} is still {current.status} / {current.step}: {current.error}")


def finished(r: Round) -> bool:
    return r.status not in (RoundStatus.QUEUED, RoundStatus.RUNNING)


def test_judgments_in_round_started_through_the_api_runs_on_the_gpu_worker(gpu_worker, api, admin, trainable, settings):
    add_judgments(trainable, 40)
    earlier = previous_version(trainable)

    response = api.as_user(admin).post(f"/api/v1/projects/{trainable.pk}/rounds/", {}, format="json")
    assert response.status_code == 201, response.json()
    done = wait_for(response.json()["id"], finished)

    assert done.status == RoundStatus.SUCCEEDED, done.error
    version = done.model_version
    assert (version.version, version.is_active, version.parent_id) == (2, True, earlier.pk)
    assert version.metrics["eval"]["accuracy"] is not None
    assert version.judgment_count + version.metrics["judgments"]["eval"] == 40
    earlier.refresh_from_db()
    assert not earlier.is_active
    status = api.get(f"/api/v1/rounds/{done.pk}/").json()
    assert (status["status"], status["progress"], status["model_version"]) == ("succeeded", 1.0, version.pk)


def test_a_worker_killed_mid_training_leaves_the_round_resumable_and_the_previous_version_active(
    trainable, settings, tmp_path
):
    app.control.purge()
    add_judgments(trainable, 40)
    earlier = previous_version(trainable)
    # Long enough to be caught in the middle; the resumed attempt then trains the same 150 steps.
    started = rounds.round_start(project=trainable, overrides={"max_steps": 150, "batch_size": 4}, enqueue=False)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.rounds.worker_settings",
        "DATABASE_URL": database_url(),
        "TANDEM_VAR_DIR": str(django_settings.VAR_DIR),
        "SECRET_KEY": django_settings.SECRET_KEY,
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "TRAINING_ARTIFACTS_DIR": str(settings.TRAINING_ARTIFACTS_DIR),
        "TRAINING_BACKBONE_ROOTS": ",".join(str(root) for root in settings.TRAINING_BACKBONE_ROOTS),
        "OMP_NUM_THREADS": "1",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--concurrency", "1",
         "--loglevel", "INFO", "-n", f"doomed-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        round_run_task.delay(started.pk)
        training = wait_for(
            started.pk, lambda r: finished(r) or (r.step == "training" and r.progress > 0.1), timeout=120
        )
        assert training.status == RoundStatus.RUNNING, (training.error, (tmp_path / "worker.log").read_text())
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool process: no chance to clean up
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)

    # Nobody runs it now: the heartbeat stops, nothing was registered, the previous version is still active.
    killed = Round.objects.get(pk=started.pk)
    time.sleep(0.5)
    assert Round.objects.get(pk=started.pk).heartbeat_at == killed.heartbeat_at
    assert (killed.status, killed.step, killed.attempts) == (RoundStatus.RUNNING, "training", 1)
    assert list(ModelVersion.objects.filter(project=trainable)) == [earlier]
    assert ModelVersion.objects.get(pk=earlier.pk).is_active
    assert not artifact_location(f"{trainable.pk}/reward/round-{started.pk}-a1").exists()

    # Once its heartbeat is stale, the scheduler's reaper requeues it and a live worker resumes it.
    Round.objects.filter(pk=started.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["gpu"], loglevel="WARNING"):
        assert rounds.rounds_reap_stale() == [started.pk]
        resumed = wait_for(started.pk, finished, timeout=120)

    assert resumed.status == RoundStatus.SUCCEEDED, resumed.error
    assert resumed.attempts == 2 and resumed.model_version.artifact_path.endswith(f"round-{started.pk}-a2")
    assert resumed.model_version.is_active and not ModelVersion.objects.get(pk=earlier.pk).is_active


def test_the_heartbeat_thread_keeps_a_quiet_phase_alive_and_stops_with_its_attempt(trainable, settings):
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 0.5  # beats every 0.1 s
    add_judgments(trainable, 2)
    started = rounds.round_start(project=trainable, enqueue=False)
    attempt = rounds._claim(started.pk)
    old = timezone.now() - timedelta(hours=1)
    Round.objects.filter(pk=started.pk).update(heartbeat_at=old)

    beat = progress.Heartbeat(round_id=started.pk, attempt=attempt)
    beat.start()
    try:
        wait_for(started.pk, lambda r: r.heartbeat_at > old, timeout=10)
    finally:
        beat.stop()
    assert not beat.is_alive()
    # Fenced: a beat of an attempt that lost the round does not touch it.
    Round.objects.filter(pk=started.pk).update(heartbeat_at=old, attempts=attempt + 1)
    stale = progress.Heartbeat(round_id=started.pk, attempt=attempt)
    stale.start()
    time.sleep(0.4)
    stale.stop()
    assert Round.objects.get(pk=started.pk).heartbeat_at == old


def test_a_span_project_round_on_the_worker_serves_per_segment_scores(
    gpu_worker, api, admin, researcher, project, tiny_backbone
):
    from .test_spans import CATEGORIES, add_marked_judgments, span_settings

    project.schema = {**project.schema, "span_categories": CATEGORIES}
    project.training_settings = span_settings(tiny_backbone)
    project.save(update_fields=["schema", "training_settings"])
    add_marked_judgments(project, 40)

    response = api.as_user(admin).post(f"/api/v1/projects/{project.pk}/rounds/", {}, format="json")
    assert response.status_code == 201, response.json()
    done = wait_for(response.json()["id"], finished)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    span_id = done.metrics["span"]["model_version"]
    listed = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/model-versions/?kind=span").json()
    assert [v["id"] for v in listed["results"]] == [span_id] and listed["results"][0]["metrics"]["eval"]["f1"]

    text = "wa001 wa002 wa003. wa004 great wa005."
    scores = api.post(f"/api/v1/projects/{project.pk}/span-scores/", {"text": text}, format="json")
    assert scores.status_code == 200, scores.json()
    segments = scores.json()["segments"]
    assert [(s["start"], s["end"]) for s in segments] == [(0, 18), (19, 37)]
    assert segments[1]["penalties"]["toxic"] > segments[0]["penalties"]["toxic"]


def test_two_policy_rounds_on_the_gpu_worker_each_push_comparisons_that_annotators_judge(
    gpu_worker, api, admin, annotator, project, tiny_backbone, tiny_policy
):
    project.training_settings = loop_settings(tiny_backbone, tiny_policy)
    project.save(update_fields=["training_settings"])
    add_judgments(project, 24)
    for i in range(3):
        PromptFactory(project=project, split=Split.EVAL, text=f"held out question {i}")

    for number in (1, 2):
        response = api.as_user(admin).post(f"/api/v1/projects/{project.pk}/rounds/", {"kind": "policy"}, format="json")
        assert response.status_code == 201, response.json()
        done = wait_for(response.json()["id"], finished, timeout=180)
        assert done.status == RoundStatus.SUCCEEDED, done.error
        assert (done.model_version.kind, done.model_version.version, done.model_version.is_active) == (
            "policy",
            number,
            True,
        )
        pushed = Comparison.objects.filter(project=project, origin__round=done.pk)
        assert sorted(c.origin["purpose"] for c in pushed) == ["active"] * 2 + ["policy_vs_previous"] * 3

        # The annotator is served a head-to-head first (the highest priority; older rounds' first among equals)
        # and judges it through the API.
        task = api.as_user(annotator).get(f"/api/v1/projects/{project.pk}/next/").json()
        served = Comparison.objects.get(pk=task["comparison"])
        assert served.origin["purpose"] == "policy_vs_previous"
        answer = {"winner": served.candidate_ids[0], "shown_order": served.candidate_ids}
        submitted = api.as_user(annotator).post(
            f"/api/v1/comparisons/{served.pk}/judgments/", answer, format="json", HTTP_IDEMPOTENCY_KEY=f"k{number}"
        )
        assert submitted.status_code == 201, submitted.json()

    listed = api.as_user(admin).get(f"/api/v1/projects/{project.pk}/rounds/").json()["results"]
    votes = [r["human_win_rate"]["wins"] if r["human_win_rate"] else 0 for r in listed]
    assert sum(votes) == 2  # both votes were for the new policy's answer (stored first)
    assert [[s["status"] for s in r["steps"]] for r in listed] == [["succeeded"] * 7] * 2
    assert ModelVersion.objects.filter(project=project, kind="policy").count() == 2
