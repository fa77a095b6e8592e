"""Rounds train with the label-quality weights: excluded annotators' labels are left out, and the registered
metrics say which weighting the round used."""

import pytest

from annotation.models import Candidate, Membership, Role
from annotation.quality.exclusions import annotator_exclude, annotator_restore
from annotation.quality.service import quality_recompute
from tests.factories import UserFactory
from training import rounds
from training.models import RoundStatus

from .conftest import add_judgments

pytestmark = pytest.mark.django_db


def _member(project, name):
    user = UserFactory(username=name)
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


def _flip(judgments):
    """The poisoner: every winner swapped for the other candidate."""
    for judgment in judgments:
        other = next(c for c in judgment.comparison.candidate_ids if c != judgment.winner_id)
        judgment.winner = Candidate.objects.get(pk=other)
        judgment.save(update_fields=["winner"])


def _run(project, researcher):
    started = rounds.round_start(project=project, triggered_by=researcher, enqueue=False)
    finished = rounds.round_run(round_id=started.pk)
    assert finished.status == RoundStatus.SUCCEEDED, finished.error
    return finished


def test_an_excluded_annotators_labels_are_dropped_and_the_metrics_name_them(trainable, researcher):
    good, poisoner = _member(trainable, "good"), _member(trainable, "poisoner")
    add_judgments(trainable, 30, annotator=good)
    _flip(add_judgments(trainable, 20, seed=2, start=500, annotator=poisoner))

    plain = _run(trainable, researcher)
    assert plain.metrics["weighting"]["scheme"] == "uniform" and plain.metrics["weighting"]["excluded_annotators"] == []
    assert plain.metrics["pairs"].get("zero_weight_pairs_dropped", 0) == 0

    annotator_exclude(project=trainable, annotator_id=poisoner.pk, actor=researcher, reason="flipped labels")
    add_judgments(trainable, 2, seed=3, start=900, annotator=good)  # new judgments, so the round retrains
    excluded = _run(trainable, researcher)
    weighting = excluded.model_version.metrics["weighting"]
    assert weighting["excluded_annotators"] == [{"id": poisoner.pk, "username": "poisoner"}]
    assert weighting["scheme"] == "uniform + exclusions"
    assert "excluded poisoner" in excluded.log_tail
    assert excluded.metrics["pairs"]["zero_weight_pairs_dropped"] == 20

    annotator_restore(project=trainable, annotator_id=poisoner.pk, actor=researcher)
    add_judgments(trainable, 2, seed=4, start=950, annotator=good)
    restored = _run(trainable, researcher)
    assert restored.metrics["weighting"]["excluded_annotators"] == []
    assert restored.metrics["pairs"].get("zero_weight_pairs_dropped", 0) == 0


def test_a_round_weighs_annotators_by_their_computed_reliability_unless_told_not_to(trainable, researcher):
    good, poisoner = _member(trainable, "good"), _member(trainable, "poisoner")
    add_judgments(trainable, 30, annotator=good)
    _flip(add_judgments(trainable, 20, seed=2, start=500, annotator=poisoner))
    # Gold checks both answered: the good annotator right, the poisoner wrong — that is what reveals them.
    gold_good = add_judgments(trainable, 12, seed=5, start=700, annotator=good, gold=True)
    for judgment in gold_good:
        judgment.comparison.wanted = 2
        judgment.comparison.save(update_fields=["wanted"])
        flipped = next(c for c in judgment.comparison.candidate_ids if c != judgment.winner_id)
        judgment.comparison.judgments.create(
            project=trainable, annotator=poisoner, winner_id=flipped, idempotency_key=f"p-{judgment.pk}"
        )
    quality_recompute(project_id=trainable.pk)

    weighted = _run(trainable, researcher)
    weighting = weighted.metrics["weighting"]
    assert weighting["scheme"] == "reliability"
    assert weighting["weights"]["poisoner"] == 0.0 and weighting["weights"]["good"] > 0.5
    assert weighted.metrics["pairs"]["zero_weight_pairs_dropped"] == 20

    trainable.training_settings = {**trainable.training_settings, "annotator_weighting": "uniform"}
    trainable.save(update_fields=["training_settings"])
    add_judgments(trainable, 2, seed=6, start=990, annotator=good)
    uniform = _run(trainable, researcher)
    assert uniform.metrics["weighting"]["scheme"] == "uniform"
    assert uniform.metrics["pairs"].get("zero_weight_pairs_dropped", 0) == 0
