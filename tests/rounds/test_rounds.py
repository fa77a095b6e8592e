"""Round lifecycle on the real database with a tiny backbone: success, failure, cancel, redelivery, resume."""

import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from transformers import AutoModelForSequenceClassification

from annotation.models import Judgment, Prompt, Split
from training import rounds
from training.config import ConfigInvalid
from training.judgments_source import judgment_records
from training.models import ModelVersion, Round, RoundStatus, RoundTrigger
from training.registry import artifact_location

from .conftest import add_judgments, previous_version

pytestmark = pytest.mark.django_db


def test_a_round_trains_registers_and_activates_a_new_version(trainable, admin):
    judgments = add_judgments(trainable, 40)
    add_judgments(trainable, 3, start=1000, gold=True)
    started = rounds.round_start(project=trainable, triggered_by=admin, enqueue=False)
    assert started.status == RoundStatus.QUEUED and started.config["epochs"] == 2

    finished = rounds.round_run(round_id=started.pk)

    assert finished.status == RoundStatus.SUCCEEDED, finished.error
    assert (finished.step, finished.progress, finished.attempts) == ("done", 1.0, 1)
    version = finished.model_version
    assert (version.version, version.is_active, version.parent) == (1, True, None)
    assert version.base_model == trainable.training_settings["backbone"]
    # The snapshot: the 40 non-gold judgments, those it trained from and those held out listed apart.
    counts = version.metrics["judgments"]
    assert version.judgment_count == counts["train"] and counts["eval"] > 0 and counts["train"] + counts["eval"] == 40
    assert version.judgment_snapshot_id.startswith("ps-")
    assert version.judgment_max_id == Judgment.objects.order_by("-pk").first().pk
    folder = artifact_location(version)
    trained_from = (folder / "judgment_ids.txt").read_text().split()
    held_out = (folder / "eval_judgment_ids.txt").read_text().split()
    assert (len(trained_from), len(held_out)) == (counts["train"], counts["eval"])
    assert sorted(trained_from + held_out) == sorted(str(j.pk) for j in judgments)
    manifest = json.loads((folder / "tandem_reward.json").read_text())
    assert manifest["snapshot_id"] == version.judgment_snapshot_id and manifest["extra"]["round"] == started.pk
    # Held-out metrics on the version and the round, and the model loads with plain from_pretrained.
    held_out_metrics = version.metrics["eval"]
    assert held_out_metrics["n_pairs"] > 0 and 0.0 <= held_out_metrics["accuracy"] <= 1.0
    low, high = held_out_metrics["accuracy_ci"]
    assert low <= held_out_metrics["accuracy"] <= high
    assert held_out_metrics["baselines"]["length"]["n"] == held_out_metrics["n_decided"]
    assert isinstance(held_out_metrics["beats_baselines"], bool)
    assert version.metrics["pairs"]["gold_excluded"] == 3
    assert finished.metrics.pop("reward_version") == {"id": version.pk, "version": 1, "active": True}
    assert finished.metrics == version.metrics
    assert [(s["name"], s["status"]) for s in finished.steps] == [("reward", "succeeded"), ("register", "succeeded")]
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_labels == 1
    assert "held-out accuracy" in finished.log_tail and "length-only" in finished.log_tail
    assert finished.started_at and finished.finished_at and finished.heartbeat_at


def test_the_next_round_becomes_the_child_of_the_active_version_and_is_compared_with_it(trainable):
    add_judgments(trainable, 40)
    first = rounds.round_run(round_id=rounds.round_start(project=trainable, enqueue=False).pk).model_version
    add_judgments(trainable, 8, start=500)
    second = rounds.round_run(round_id=rounds.round_start(project=trainable, enqueue=False).pk).model_version

    first.refresh_from_db()
    assert (second.version, second.parent, second.is_active, first.is_active) == (2, first, True, False)
    assert second.judgment_count + second.metrics["judgments"]["eval"] == 48
    assert second.metrics["previous_version"] == 1
    assert "accuracy" in second.metrics["vs_previous"]


def test_the_database_allows_one_live_round_per_project(trainable):
    add_judgments(trainable, 4)
    live = rounds.round_start(project=trainable, enqueue=False)
    with pytest.raises(rounds.RoundAlreadyRunning) as refused:
        rounds.round_start(project=trainable, enqueue=False)
    assert refused.value.round == live
    # The index itself, not just the service, refuses a second live round.
    with pytest.raises(IntegrityError), transaction.atomic():
        Round.objects.create(project=trainable, status=RoundStatus.RUNNING)
    Round.objects.filter(pk=live.pk).update(status=RoundStatus.SUCCEEDED)
    assert rounds.round_start(project=trainable, enqueue=False).status == RoundStatus.QUEUED


def test_a_failure_mid_training_fails_the_round_and_keeps_the_previous_version(trainable, monkeypatch):
    add_judgments(trainable, 40)
    earlier = previous_version(trainable)
    real_train = rounds_train()

    def train_then_break(pairs, config, *, progress):
        def progress_that_breaks(step, total, loss):
            progress(step, total, loss)
            if step == 3:
                raise RuntimeError("CUDA out of memory (simulated at step 3)")

        return real_train(pairs, config, progress=progress_that_breaks)

    monkeypatch.setattr("training.ml.reward.train_reward_model", train_then_break)
    finished = rounds.round_run(round_id=rounds.round_start(project=trainable, enqueue=False).pk)

    assert finished.status == RoundStatus.FAILED
    assert finished.error == "Failed while training: RuntimeError: CUDA out of memory (simulated at step 3)"
    assert finished.model_version is None and finished.finished_at is not None
    assert list(ModelVersion.objects.filter(project=trainable)) == [earlier]
    earlier.refresh_from_db()
    assert earlier.is_active
    assert not (artifact_location(f"{trainable.pk}/reward")).exists()


def test_a_failure_after_saving_deletes_the_artifact_and_registers_nothing(trainable, monkeypatch):
    add_judgments(trainable, 40)
    earlier = previous_version(trainable)

    def broken_register(**kwargs):
        assert artifact_location(kwargs["artifact_path"]).is_dir()  # the checkpoint was complete on disk
        raise IntegrityError("simulated registry failure")

    monkeypatch.setattr("training.registry.version_register", broken_register)
    finished = rounds.round_run(round_id=rounds.round_start(project=trainable, enqueue=False).pk)

    # Our message, not the database's text (which can name tables and columns): that goes to the worker's log.
    assert finished.status == RoundStatus.FAILED and "a database error" in finished.error
    assert "simulated registry failure" not in finished.error + finished.log_tail
    assert list(artifact_location(f"{trainable.pk}/reward").iterdir()) == []
    earlier.refresh_from_db()
    assert earlier.is_active and ModelVersion.objects.count() == 1


def test_a_redelivered_message_does_not_run_a_round_twice(trainable, monkeypatch):
    add_judgments(trainable, 4)
    started = rounds.round_start(project=trainable, enqueue=False)
    # The first delivery claimed the round and is training (fresh heartbeat) …
    assert rounds._claim(started.pk) == 1

    def must_not_train(*args, **kwargs):
        raise AssertionError("a duplicate delivery trained")

    monkeypatch.setattr("training.ml.reward.train_reward_model", must_not_train)
    # … so a second delivery leaves it alone,
    again = rounds.round_run(round_id=started.pk)
    assert (again.status, again.attempts) == (RoundStatus.RUNNING, 1)
    # and so does one after it finished, and one for a round that no longer exists.
    Round.objects.filter(pk=started.pk).update(status=RoundStatus.SUCCEEDED)
    assert rounds.round_run(round_id=started.pk).status == RoundStatus.SUCCEEDED
    assert rounds.round_run(round_id=10**12) is None


def test_a_stale_round_is_taken_over_and_resumes_on_the_same_snapshot(trainable):
    add_judgments(trainable, 40)
    started = rounds.round_start(project=trainable, enqueue=False)
    assert rounds._claim(started.pk) == 1
    # The first worker died: its heartbeat is older than the stale limit. Judgments added since are not used.
    Round.objects.filter(pk=started.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    add_judgments(trainable, 5, start=700)

    finished = rounds.round_run(round_id=started.pk)

    assert finished.status == RoundStatus.SUCCEEDED, finished.error
    assert finished.attempts == 2 and "attempt 2" in finished.log_tail
    version = finished.model_version
    assert version.judgment_count + version.metrics["judgments"]["eval"] == 40
    assert finished.model_version.artifact_path.endswith(f"round-{started.pk}-a2")


def test_a_round_out_of_attempts_fails_instead_of_running_again(trainable, settings):
    settings.TRAINING_ROUND_MAX_ATTEMPTS = 1
    add_judgments(trainable, 4)
    started = rounds.round_start(project=trainable, enqueue=False)
    rounds._claim(started.pk)
    Round.objects.filter(pk=started.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    finished = rounds.round_run(round_id=started.pk)

    assert finished.status == RoundStatus.FAILED and "Gave up after 1 attempts" in finished.error


def test_the_reaper_requeues_a_silent_round_or_fails_it_when_out_of_attempts(trainable):
    add_judgments(trainable, 4)
    started = rounds.round_start(project=trainable, enqueue=False)
    rounds._claim(started.pk)
    assert rounds.rounds_reap_stale() == []  # heartbeat still fresh
    Round.objects.filter(pk=started.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    assert rounds.rounds_reap_stale() == [started.pk]
    started.refresh_from_db()
    assert (started.status, started.attempts) == (RoundStatus.QUEUED, 1)

    assert rounds._claim(started.pk) == 2  # the requeued message; its worker dies too (2 = the default limit)
    Round.objects.filter(pk=started.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert rounds.rounds_reap_stale() == [started.pk]
    started.refresh_from_db()
    assert started.status == RoundStatus.FAILED and "stopped reporting" in started.error


def test_a_round_whose_message_was_lost_is_sent_again_and_runs(
    trainable, monkeypatch, django_capture_on_commit_callbacks
):
    from training import dispatch

    add_judgments(trainable, 4)

    def broker_down(name, round_id):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(dispatch, "send", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        started = rounds.round_start(project=trainable)  # the send fails after commit; the start does not
    assert Round.objects.get(pk=started.pk).status == RoundStatus.QUEUED
    assert rounds.rounds_reap_stale() == []  # queued only just now

    sent = []
    monkeypatch.setattr(dispatch, "send", lambda name, round_id: sent.append(round_id))
    Round.objects.filter(pk=started.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert rounds.rounds_reap_stale() == [started.pk]
    assert sent == [started.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert rounds.rounds_reap_stale() == []  # not again until it has waited that long once more
    assert rounds.round_run(round_id=started.pk).status == RoundStatus.SUCCEEDED


def test_cancelling_a_queued_round_is_immediate_and_its_message_then_does_nothing(trainable):
    add_judgments(trainable, 4)
    started = rounds.round_start(project=trainable, enqueue=False)
    assert rounds.round_cancel(round_id=started.pk).status == RoundStatus.CANCELLED
    assert rounds.round_run(round_id=started.pk).status == RoundStatus.CANCELLED
    with pytest.raises(rounds.RoundNotCancellable):
        rounds.round_cancel(round_id=started.pk)


def test_cancelling_a_running_round_stops_it_at_the_next_progress_report(trainable, monkeypatch):
    add_judgments(trainable, 40)
    earlier = previous_version(trainable)
    real_train = rounds_train()

    def train_and_cancel_at_step_2(pairs, config, *, progress):
        def progress_then_cancel(step, total, loss):
            if step == 2:
                rounds.round_cancel(round_id=started.pk)  # an admin clicks "cancel" meanwhile
            progress(step, total, loss)

        return real_train(pairs, config, progress=progress_then_cancel)

    monkeypatch.setattr("training.ml.reward.train_reward_model", train_and_cancel_at_step_2)
    started = rounds.round_start(project=trainable, enqueue=False)
    finished = rounds.round_run(round_id=started.pk)

    assert finished.status == RoundStatus.CANCELLED and finished.step == "cancelled"
    assert ModelVersion.objects.filter(project=trainable).count() == 1
    earlier.refresh_from_db()
    assert earlier.is_active


def test_a_version_that_regresses_is_registered_but_not_activated_when_asked(trainable):
    add_judgments(trainable, 40)
    earlier = previous_version(trainable, metrics={"eval": {"accuracy": 1.01}})  # unbeatable
    started = rounds.round_start(
        project=trainable, overrides={"require_no_regression": True}, trigger=RoundTrigger.MANUAL, enqueue=False
    )
    finished = rounds.round_run(round_id=started.pk)
    assert finished.status == RoundStatus.SUCCEEDED
    assert not finished.model_version.is_active and finished.model_version.version == 2
    earlier.refresh_from_db()
    assert earlier.is_active


def test_a_round_without_a_backbone_or_judgments_is_refused_with_a_reason(project, tiny_backbone):
    with pytest.raises(ConfigInvalid) as no_backbone:
        rounds.round_start(project=project, enqueue=False)
    assert "backbone" in no_backbone.value.errors
    with pytest.raises(ConfigInvalid) as typo:
        rounds.round_start(project=project, overrides={"backbone": tiny_backbone, "epoch": 3}, enqueue=False)
    assert list(typo.value.errors) == ["epoch"]
    with pytest.raises(rounds.NothingToTrain):
        rounds.round_start(project=project, overrides={"backbone": tiny_backbone}, enqueue=False)


def test_judgments_become_plain_records_with_gold_flagged_and_explicit_splits_honoured(project):
    plain = add_judgments(project, 3)
    add_judgments(project, 1, start=50, gold=True)
    records = judgment_records(project_id=project.pk, max_judgment_id=plain[-1].pk)
    assert [r.judgment_id for r in records] == [j.pk for j in plain]  # the cut-off excludes the gold one
    assert all(r.split is None and not r.is_gold for r in records)  # no eval prompt marked: the builder hashes
    first = records[0]
    assert first.winner in first.candidates and len(first.candidates) == 2

    Prompt.objects.filter(pk=first.prompt_id).update(
        split=Split.EVAL, context=[{"role": "system", "content": "Be kind."}]
    )
    records = judgment_records(project_id=project.pk, max_judgment_id=10**12)
    assert [r.split for r in records] == ["eval", "train", "train", "train"]
    assert records[0].prompt_text.startswith("system: Be kind.\nuser: ")
    assert records[-1].is_gold


def rounds_train():
    from training.ml import reward

    return reward.train_reward_model


def test_a_gold_check_on_a_prompt_marked_eval_does_not_decide_the_split(trainable):
    """Gold comparisons never train; a researcher marking a gold prompt 'eval' (where gold checks often live)
    must not switch the project from the hashed split to the stored one, which would put every other prompt
    in train and leave no held-out pairs."""
    add_judgments(trainable, 40)
    gold = add_judgments(trainable, 3, start=1000, gold=True)
    hashed = judgment_records(project_id=trainable.pk, max_judgment_id=10**12)
    Prompt.objects.filter(pk__in=[j.comparison.prompt_id for j in gold]).update(split=Split.EVAL)
    records = judgment_records(project_id=trainable.pk, max_judgment_id=10**12)
    assert records == hashed and all(r.split is None for r in records)

    done = rounds.round_run(round_id=rounds.round_start(project=trainable, enqueue=False).pk)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    pairs = done.model_version.metrics["pairs"]
    assert pairs["gold_excluded"] == 3 and pairs["eval_pairs"] > 0 and pairs["train_pairs"] + pairs["eval_pairs"] == 40


def test_a_version_with_no_held_out_metrics_never_replaces_an_evaluated_one(trainable):
    add_judgments(trainable, 12)
    earlier = previous_version(trainable)  # evaluated: accuracy 0.5 on 10 pairs
    started = rounds.round_start(project=trainable, overrides={"eval_fraction": 0.0}, enqueue=False)
    finished = rounds.round_run(round_id=started.pk)

    assert finished.status == RoundStatus.SUCCEEDED and finished.model_version.metrics["eval"] is None
    # The round says why it evaluated nothing (the dashboard shows it beside its metrics).
    assert "eval_fraction is 0" in finished.metrics["eval_missing"]
    assert "eval_fraction is 0" in finished.log_tail
    assert not finished.model_version.is_active
    earlier.refresh_from_db()
    assert earlier.is_active
