"""An admin starts a policy round from the dashboard and watches it run on real (tiny) models: the start goes
through the API, the round runs in a worker thread of this process (what the gpu worker does), and the page shows
its steps moving, then the new policy's metrics and the comparisons it pushed to annotators.

To see a step running for certain, the optimise step waits until the page has shown it running."""

import re
import threading

import pytest
from django.db import connection

from annotation.models import Comparison, Split
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
