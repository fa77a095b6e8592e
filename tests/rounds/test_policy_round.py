"""Policy rounds on tiny models, in-process on the real database: the whole loop — reward model, generate, score,
optimise (DPO with LoRA), evaluate, push — and what a failed or cancelled round leaves behind (nothing)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Candidate, CandidateSource, Comparison, Split
from annotation.queue import comparison_claim
from tests.factories import PromptFactory
from training import rounds
from training.models import ModelKind, ModelVersion, Round, RoundStatus
from training.registry import artifact_location, artifacts_root

from .conftest import add_judgments, fast_settings, loop_settings

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

STEPS = ["reward", "generate", "score", "optimise", "evaluate", "push", "register"]


@pytest.fixture
def looping(project, tiny_backbone, tiny_policy):
    project.training_settings = loop_settings(tiny_backbone, tiny_policy)
    project.save(update_fields=["training_settings"])
    add_judgments(project, 24)
    for i in range(3):
        PromptFactory(project=project, split=Split.EVAL, text=f"held out question {i}")
    return project


def run_policy_round(project):
    return rounds.round_run(round_id=rounds.round_start(project=project, enqueue=False).pk)


def test_a_policy_round_runs_every_step_and_pushes_the_new_policys_answers_into_the_queue(looping, annotator):
    done = run_policy_round(looping)

    assert done.status == RoundStatus.SUCCEEDED, done.error
    assert done.kind == ModelKind.POLICY
    assert [(s["name"], s["status"]) for s in done.steps] == [(name, "succeeded") for name in STEPS]
    assert all(s["seconds"] >= 0 for s in done.steps)
    policy = done.model_version
    assert (policy.kind, policy.version, policy.is_active) == (ModelKind.POLICY, 1, True)
    assert (artifact_location(policy) / "config.json").exists()  # merged weights: plain from_pretrained
    manifest = json.loads((artifact_location(policy) / "tandem_policy.json").read_text())
    seen = manifest["extra"]["pairs"]  # the exact data it saw: regenerable from seeds, or judged
    assert len(seen) == done.metrics["policy_train"]["pairs"] and {p["source"] for p in seen} == {"rm", "human"}
    assert all(isinstance(p["chosen_seed"], int) for p in seen if p["source"] == "rm")
    reward = ModelVersion.objects.get(project=looping, kind=ModelKind.REWARD)
    assert done.metrics["reward_version"]["id"] == reward.pk and reward.is_active
    evaluated = done.metrics["policy"]
    assert evaluated["n"] == 3 and 0.0 <= evaluated["win_rate"] <= 1.0
    assert set(policy.metrics["policy"]) >= {"reward_new", "reward_previous", "kl_to_reference"}
    assert done.metrics["generation"]["prompts"] == 6 and done.metrics["policy_train"]["pairs_by_source"]["rm"] > 0

    pushed = Comparison.objects.filter(project=looping, origin__round=done.pk).order_by("-priority", "pk")
    purposes = [c.origin["purpose"] for c in pushed]
    assert purposes == ["policy_vs_previous"] * 3 + ["active"] * 2
    head_to_head = pushed[0]
    new, previous = Candidate.objects.in_bulk(head_to_head.candidate_ids).values()
    assert (new.source, new.origin["round"], new.origin["policy_version"]) == (CandidateSource.GENERATED, done.pk, 1)
    assert previous.origin["policy_version"] == 0 and isinstance(new.origin["seed"], int)
    assert new.origin["sampling"]["max_new_tokens"] == 8

    # Annotators get the pushed comparisons first, and their votes become the round's human win rate.
    claim = comparison_claim(project_id=looping.pk, annotator_id=annotator.pk)
    assert claim.comparison_id == head_to_head.pk
    judgment_submit(
        comparison_id=head_to_head.pk,
        annotator_id=annotator.pk,
        answer=JudgmentInput(winner=head_to_head.candidate_ids[0], shown_order=head_to_head.candidate_ids),
        idempotency_key="vote-1",
    )
    from training.win_rates import human_win_rates

    assert human_win_rates(round_ids=[done.pk])[done.pk]["wins"] == 1


def test_the_next_round_generates_with_the_new_policy_and_registers_its_child(looping):
    first = run_policy_round(looping)
    add_judgments(looping, 4, start=500)
    second = run_policy_round(looping)

    assert second.status == RoundStatus.SUCCEEDED, second.error
    v1, v2 = first.model_version, second.model_version
    assert (v2.version, v2.parent_id, v2.is_active) == (2, v1.pk, True)
    v1.refresh_from_db()
    assert not v1.is_active
    assert second.metrics["generation"]["policy_version"] == 1
    generated = Candidate.objects.filter(origin__round=second.pk, origin__policy_version=1)
    assert generated.exists()


def test_a_failure_in_the_policy_update_pushes_and_registers_nothing(looping, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr("training.ml.policy.train_policy", out_of_memory)
    done = run_policy_round(looping)

    assert done.status == RoundStatus.FAILED
    assert done.error == "Failed while training: RuntimeError: CUDA out of memory (simulated)"
    assert [s["status"] for s in done.steps] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
        "pending",
        "pending",
        "pending",
    ]
    assert not ModelVersion.objects.filter(project=looping).exists()  # not even the reward model it trained
    assert not Comparison.objects.filter(origin__round=done.pk).exists()
    assert not Candidate.objects.filter(source=CandidateSource.GENERATED).exists()
    assert not list(artifacts_root().glob("*/*/round-*"))  # the reward model it had saved is gone too


def test_a_round_cancelled_while_generating_stops_with_nothing_pushed(looping, monkeypatch):
    from training.ml.generation import text

    real = text.generate_candidates
    started = rounds.round_start(project=looping, enqueue=False)

    def generate_then_cancel(*args, **kwargs):
        rounds.round_cancel(round_id=started.pk)  # an admin clicks "cancel" meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(text, "generate_candidates", generate_then_cancel)
    done = rounds.round_run(round_id=started.pk)

    assert done.status == RoundStatus.CANCELLED
    assert [s["status"] for s in done.steps][:2] == ["succeeded", "cancelled"]
    assert not Comparison.objects.filter(origin__round=done.pk).exists()
    assert not ModelVersion.objects.filter(project=looping).exists()


def test_a_policy_round_needs_a_policy_and_prompts(project, tiny_backbone):
    project.training_settings = fast_settings(tiny_backbone)
    project.save(update_fields=["training_settings"])
    add_judgments(project, 4)
    from training.config import ConfigInvalid

    with pytest.raises(ConfigInvalid) as refused:
        rounds.round_start(project=project, kind="policy", enqueue=False)
    assert list(refused.value.errors) == ["policy"]
    assert rounds.round_start(project=project, enqueue=False).kind == ModelKind.REWARD  # the default without one


def test_an_rloo_round_optimises_the_policy_with_the_reward_model_as_reward(project, tiny_backbone, tiny_policy):
    project.training_settings = loop_settings(tiny_backbone, tiny_policy, policy_algorithm="rloo", policy_batch_size=2)
    project.save(update_fields=["training_settings"])
    add_judgments(project, 24)
    done = run_policy_round(project)

    assert done.status == RoundStatus.SUCCEEDED, done.error
    assert done.model_version.kind == ModelKind.POLICY and done.metrics["policy_train"]["steps"] == 2
    assert done.model_version.config["policy_algorithm"] == "rloo"
    assert Comparison.objects.filter(origin__round=done.pk, origin__purpose="active").count() == 2


def test_a_policy_round_whose_worker_died_is_taken_over_and_pushes_its_comparisons_once(looping):
    started = rounds.round_start(project=looping, enqueue=False)
    assert rounds._claim(started.pk) == 1  # a worker claims it, then dies before writing anything else
    Round.objects.filter(pk=started.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    done = rounds.round_run(round_id=started.pk)  # the redelivered message
    assert (done.status, done.attempts) == (RoundStatus.SUCCEEDED, 2), done.error
    assert Comparison.objects.filter(origin__round=done.pk).count() == 5
    assert ModelVersion.objects.filter(project=looping, kind=ModelKind.POLICY).count() == 1
