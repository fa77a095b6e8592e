"""An admin starts a policy round from the dashboard and watches it run on real (tiny) models: the start goes
through the API, the round runs in a worker thread of this process (what the gpu worker does), and the page shows
its steps moving, then the new policy's metrics and the comparisons it pushed to annotators.

To see a step running for certain, the optimise step waits until the page has shown it running."""

import io
import json
import re
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from annotation.judgments import JudgmentInput, judgment_submit
from annotation.management.commands.demo_load import DEMO_DIR, DEMO_PASSWORD, PROJECT_NAME
from annotation.models import Candidate, Comparison, Project, Split
from annotation.queue import comparison_claim
from training import dispatch, rounds
from training.models import Round

from ..factories import PromptFactory
from ..rounds.conftest import add_judgments, loop_settings
from ..training.synthetic import CUE, FILLER_A, FILLER_B, MARKER, build_tiny_backbone, build_tiny_causal_lm
from .conftest import shot, sign_in


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashboard-models")
    backbone = build_tiny_backbone(root / "bert", words=[*FILLER_A, *FILLER_B, MARKER, CUE, "to"])
    return root, backbone, build_tiny_causal_lm(root / "policy", words=[*FILLER_A, MARKER])


def _status(page, round_id: int, name: str) -> str:
    steps = page.get_by_role("list", name=f"Steps of round {round_id}")
    return steps.get_by_role("listitem").filter(has_text=name).locator(".step-status").text_content()


def test_an_admin_starts_a_policy_round_and_sees_it_run_to_its_metrics(
    page, people, tiny_models, settings, tmp_path, monkeypatch
):
    project, _ = people
    root, backbone, policy = tiny_models
    settings.TRAINING_ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.TRAINING_BACKBONE_ROOTS = [root]
    settings.TRAINING_PROGRESS_INTERVAL = 0
    project.training_settings = loop_settings(backbone, policy)
    project.save(update_fields=["training_settings"])
    add_judgments(project, 24)
    for i in range(3):
        PromptFactory(project=project, split=Split.EVAL, text=f"held out question {i}")

    shown_running = threading.Event()
    from training.steps import policy as optimise

    real_optimise = optimise.run

    def optimise_when_seen(ctx):
        shown_running.wait(timeout=60)
        real_optimise(ctx)

    monkeypatch.setattr(optimise, "run", optimise_when_seen)
    workers = []

    def worker(round_id):
        try:
            rounds.round_run(round_id=round_id)
        finally:
            connection.close()

    def send(name, round_id):
        workers.append(threading.Thread(target=worker, args=(round_id,), daemon=True))
        workers[-1].start()

    monkeypatch.setattr(dispatch, "send", send)

    sign_in(page, "adam")
    page.goto(f"/projects/{project.pk}")
    page.get_by_label("Round kind").select_option("policy")
    page.get_by_role("button", name="Start a round").click()
    page.get_by_role("list", name=re.compile(r"^Steps of round \d+$")).wait_for()
    started = Round.objects.get(project=project)
    assert started.kind == "policy"
    page.get_by_role("list", name=f"Steps of round {started.pk}").wait_for()

    running = """() => [...document.querySelectorAll('[aria-current="step"]')]
        .some(e => e.textContent.includes('optimise'))"""
    page.wait_for_function(running, timeout=60_000)
    assert [_status(page, started.pk, n) for n in ("reward", "generate", "score", "optimise")] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "running",
    ]
    shot(page, "round-from-dashboard-running")
    shown_running.set()

    results = page.get_by_role("row", name=f"Results of policy round {started.pk}")
    results.wait_for(timeout=60_000)
    workers[0].join(timeout=60)
    done = Round.objects.get(pk=started.pk)
    assert done.status == "succeeded", done.error
    assert all(_status(page, started.pk, s["name"]) == "succeeded" for s in done.steps)
    results.get_by_text("no human votes yet").wait_for()
    assert Comparison.objects.filter(origin__round=done.pk).count() == 5
    shot(page, "round-from-dashboard-succeeded")


def _judge_as_the_reference_did(project, username: str, count: int) -> None:
    """``count`` judgments by the demo's annotator, in the order the queue serves them, answered as the Fine-Grained
    RLHF reference file prefers (its ties as ties)."""
    reference = {}
    for line in (DEMO_DIR / "fgrlhf_qa_reference.jsonl").read_text().splitlines():
        for preference in json.loads(line)["preferences"]:
            reference[frozenset(preference["candidate_ids"])] = preference["winner"]
    annotator = get_user_model().objects.get(username=username)
    for i in range(count):
        claim = comparison_claim(project_id=project.pk, annotator_id=annotator.pk)
        comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
        external = dict(Candidate.objects.filter(pk__in=comparison.candidate_ids).values_list("external_id", "pk"))
        winner = reference[frozenset(external)]
        answer = JudgmentInput(tie=True) if winner is None else JudgmentInput(winner=external[winner])
        judgment_submit(
            comparison_id=comparison.pk, annotator_id=annotator.pk, answer=answer, idempotency_key=f"demo-{i}"
        )


def test_on_the_demo_an_admin_fixes_the_training_settings_and_the_first_round_shows_held_out_metrics(
    page, transactional_db, settings, tmp_path, monkeypatch
):
    call_command("demo_load", stdout=io.StringIO())
    project = Project.objects.get(name=PROJECT_NAME)
    # The first 30 tasks the queue serves: with eval prompts served last, as before, none of them was held out.
    _judge_as_the_reference_did(project, "annotator", 30)
    settings.TRAINING_ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.TRAINING_PROGRESS_INTERVAL = 0
    workers = []

    def send(name, round_id):
        def work():
            try:
                rounds.round_run(round_id=round_id)
            finally:
                connection.close()

        workers.append(threading.Thread(target=work, daemon=True))
        workers[-1].start()

    monkeypatch.setattr(dispatch, "send", send)

    page.goto("/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("signed-in-as").wait_for()  # else the next page load can cut the sign-in short
    page.goto(f"/projects/{project.pk}")

    # The training settings: the demo's shown; a bad value is refused on its field and nothing is saved.
    page.get_by_text("Training settings", exact=True).click()
    editor = page.get_by_role("form", name="Training settings")
    assert editor.get_by_label("backbone").input_value() == "builtin:minilm"
    editor.get_by_label("epochs", exact=True).fill("0")
    editor.get_by_role("button", name="Save training settings").click()
    epochs_error = page.locator("#setting-epochs-error")
    epochs_error.wait_for()
    assert epochs_error.text_content() == "Must be greater than 0."
    assert editor.get_by_label("epochs", exact=True).get_attribute("aria-invalid") == "true"
    shot(page, "demo-training-settings-refused")
    project.refresh_from_db()
    assert project.training_settings["epochs"] == 1
    editor.get_by_label("epochs", exact=True).fill("2")
    editor.get_by_role("button", name="Save training settings").click()
    editor.get_by_role("status").filter(has_text="Training settings saved.").wait_for()
    project.refresh_from_db()
    assert project.training_settings["epochs"] == 2 and project.training_settings["backbone"] == "builtin:minilm"
    editor.get_by_label("epochs", exact=True).fill("1")  # a quick round on two cores
    editor.get_by_role("button", name="Save training settings").click()
    editor.get_by_role("status").filter(has_text="Training settings saved.").wait_for()

    page.get_by_label("Round kind").select_option("reward")
    page.get_by_role("button", name="Start a round").click()
    page.get_by_role("list", name=re.compile(r"^Steps of round \d+$")).wait_for()
    started = Round.objects.get(project=project)
    workers[0].join(timeout=300)
    done = Round.objects.get(pk=started.pk)
    assert done.status == "succeeded", done.error
    held_out = done.metrics["eval"]
    assert held_out and held_out["n_pairs"] > 0, done.log_tail

    # The page follows: the round's accuracy, and the version's metrics side by side.
    row = page.get_by_role("row", name=f"#{started.pk}")
    page.wait_for_function(
        f"[...document.querySelectorAll('tr')].some(r => r.textContent.includes('#{started.pk}') "
        f"&& r.textContent.includes('{held_out['accuracy']:.3f}'))",
        timeout=30_000,
    )
    assert "No held-out pairs" not in row.text_content()
    versions = page.get_by_role("table", name="reward versions and their metrics")
    version_row = versions.get_by_role("row").filter(has=page.get_by_role("rowheader", name="reward v1"))
    version_row.filter(has_text=f"{held_out['accuracy']:.3f}").wait_for(timeout=30_000)
    # Beside it, the held-out figures against the trivial baselines on the same pairs.
    versions.get_by_label("reward v1 held-out evaluation").filter(has_text="length-only").wait_for()
    assert versions.get_by_role("columnheader", name="n pairs").count() == 1
    shot(page, "demo-round-held-out-metrics")
    assert page.errors == []
