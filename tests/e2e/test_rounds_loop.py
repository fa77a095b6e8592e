"""An admin watches a policy round go through the loop on the dashboard: the steps move as the worker reports
them, the reward model's verdict on the new policy appears when it is evaluated, people's win rate once they have
judged the pushed head-to-head, the samples read as plain text; the new policy can be tried and rolled back.

The worker is simulated: the test writes the Round row the way training.progress does."""

from datetime import UTC, datetime, timedelta

from annotation.models import Comparison
from training.models import ModelVersion, Round

from ..annotation.export_world import judge
from ..factories import make_comparison
from .conftest import shot, sign_in

STEPS = ["reward", "generate", "score", "optimise", "evaluate", "push", "register"]
HOSTILE = '<img src=x onerror="window.__pwned = 1">'


def _steps(done: int, running: str | None = None) -> list[dict]:
    """The first ``done`` steps succeeded, the next one running (when named), the rest pending."""
    started = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    steps = []
    for i, name in enumerate(STEPS):
        if i < done:
            steps.append({"name": name, "status": "succeeded", "started_at": started, "seconds": 12.0 + i})
        elif name == running:
            steps.append({"name": name, "status": "running", "started_at": started})
        else:
            steps.append({"name": name, "status": "pending"})
    return steps


def _step_status(page, round_id: int, name: str) -> str:
    steps = page.get_by_role("list", name=f"Steps of round {round_id}")
    return steps.get_by_role("listitem").filter(has_text=name).locator(".step-status").text_content()


def test_an_admin_watches_a_policy_round_move_through_its_steps(page, people, settings, tmp_path):
    project, users = people
    settings.TRAINING_ARTIFACTS_DIR = tmp_path
    (tmp_path / "policy-1").mkdir()  # v1 can be rolled back to; v2's weights are gone, so it cannot be sampled
    for version in (1, 2):
        ModelVersion.objects.create(
            project=project,
            kind="policy",
            version=version,
            base_model="tiny-policy",
            artifact_path=f"policy-{version}",
            judgment_snapshot_id=f"p{version}",
            is_active=version == 2,
        )
    live = Round.objects.create(
        project=project, kind="policy", status="running", step="training", steps=_steps(0, "reward"), progress=0.05
    )
    sign_in(page, "adam")
    page.goto(f"/projects/{project.pk}")
    row = page.get_by_role("row", name=f"#{live.pk}")
    row.get_by_role("list", name=f"Steps of round {live.pk}").wait_for()
    assert _step_status(page, live.pk, "reward") == "running"
    assert row.locator("[aria-current=step]").text_content().startswith("● reward running")
    assert _step_status(page, live.pk, "optimise") == "pending"

    # The worker finishes three steps and starts optimising; the page follows without a reload.
    Round.objects.filter(pk=live.pk).update(step="optimising", steps=_steps(3, "optimise"), progress=0.55)
    page.wait_for_function(
        f"document.querySelector('[aria-label=\"Steps of round {live.pk}\"] [aria-current=step]')"
        "?.textContent.includes('optimise')"
    )
    assert [_step_status(page, live.pk, name) for name in ("reward", "generate", "score")] == ["succeeded"] * 3
    assert row.get_by_role("progressbar").get_attribute("value") == "0.55"
    assert row.get_by_test_id(f"round-phase-{live.pk}").text_content() == "optimising"
    assert row.get_by_role("button", name=f"Cancel round {live.pk}").is_visible()
    shot(page, "rounds-loop-running")

    # It evaluates, pushes the head-to-head and registers: the round succeeds with the reward model's verdict.
    metrics = {
        "eval": {"accuracy": 0.71},
        "policy": {
            "reward_new": 1.42,
            "reward_previous": 1.05,
            "win_rate": 0.64,
            "win_rate_low": 0.52,
            "win_rate_high": 0.75,
            "kl_to_reference": 0.031,
            "mean_tokens_new": 87.5,
            "prompts": 24,
            "samples": [{"prompt": "Say hello.", "new": f"Hello! {HOSTILE}", "previous": "<script>hi</script>"}],
        },
        "generation": {"prompts": 16, "candidates_per_prompt": 4, "tokens": 5120, "reward_mean": 0.9},
        "push": {"policy_vs_previous": 3, "active": 5, "comparisons_created": 8},
    }
    Round.objects.filter(pk=live.pk).update(
        status="succeeded", step="done", steps=_steps(len(STEPS)), progress=1.0, metrics=metrics
    )
    results = page.get_by_role("row", name=f"Results of policy round {live.pk}")
    results.wait_for()
    assert page.get_by_role("button", name=f"Cancel round {live.pk}").count() == 0
    assert [_step_status(page, live.pk, name) for name in STEPS] == ["succeeded"] * len(STEPS)
    assert results.get_by_test_id(f"human-win-rate-{live.pk}").text_content().endswith("no human votes yet.")
    assert results.get_by_test_id("policy-metric-reward_new").text_content() == "1.420"
    assert results.get_by_test_id("policy-metric-win_rate").text_content() == "64.0 % (95 % CI 52.0–75.0 %)"
    assert results.get_by_test_id("policy-metric-kl_to_reference").text_content() == "0.031"
    assert results.get_by_test_id("policy-metric-mean_tokens_new").text_content() == "87.500"

    # People judge the pushed head-to-head (candidates stored [new, previous]): 2 wins and a tie for the new one.
    for user, answer in (("anna", {"winner": 0}), ("rita", {"winner": 0}), ("adam", {"tie": True})):
        comparison = make_comparison(project, wanted=1, texts=[f"new for {user}", f"previous for {user}"])
        Comparison.objects.filter(pk=comparison.pk).update(origin={"round": live.pk, "purpose": "policy_vs_previous"})
        judge(comparison, users[user], **answer)
    page.reload()
    human = page.get_by_test_id(f"human-win-rate-{live.pk}")
    human.filter(has_text="n = 3").wait_for()
    assert "83.3 %" in human.text_content()  # (2 + 1/2) / 3
    assert "2 wins, 0 losses, 1 ties" in human.text_content()
    chart = page.get_by_role("img", name="Win rate of each policy round's new policy over the previous one")
    assert chart.locator("circle").count() == 2  # people and the reward model, for this round

    # The samples open from the keyboard and are text, not markup.
    summary = page.get_by_text(f"Sample generations of round {live.pk} (1)")
    summary.focus()
    page.keyboard.press("Enter")
    new_answer = page.get_by_role("region", name="New policy")
    new_answer.wait_for()
    assert new_answer.locator("p").text_content() == f"Hello! {HOSTILE}"
    assert page.get_by_role("region", name="Previous policy").locator("p").text_content() == "<script>hi</script>"
    assert results.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None
    shot(page, "rounds-loop-succeeded")

    # Policies: weights to download, a sampler that reports why it cannot answer here, and a roll back.
    policies = page.get_by_role("region", name="policy model versions")
    link = policies.get_by_role("link", name="Download policy v2 (adapter)")
    assert link.get_attribute("href") == f"/api/v1/model-versions/{_version(project, 2).pk}/download/?part=adapter"
    policies.get_by_text("Try policy v2").click()
    sampler = page.get_by_role("form", name="Try policy v2")
    sampler.get_by_label("Prompt for policy v2").fill("Say hello.")
    sampler.get_by_label("Seed (empty: random)").fill("7")
    sampler.get_by_role("button", name="Sample").click()
    assert "artifact of policy version 2 is missing" in sampler.get_by_role("alert").text_content()
    policies.get_by_role("button", name="Roll back to policy v1").click()
    policies.get_by_test_id(f"version-{_version(project, 1).pk}").filter(has_text="active").wait_for()
    assert _version(project, 1).is_active
    assert page.errors == []


def _version(project, number: int) -> ModelVersion:
    return ModelVersion.objects.get(project=project, kind="policy", version=number)
