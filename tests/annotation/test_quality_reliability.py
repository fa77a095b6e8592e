"""The reliability model recovers planted annotator accuracies and the true answers on synthetic data."""

import random

import pytest

from annotation.quality.reliability import Label, reliability_fit, reliability_weight


def _simulate(*, seed, items=1500, per_item=5, accuracies):
    rng = random.Random(seed)
    truth, labels = {}, []
    annotators = list(accuracies)
    for item in range(items):
        options = ("a", "b")
        truth[item] = rng.choice(options)
        for annotator in rng.sample(annotators, per_item):
            right = rng.random() < accuracies[annotator]
            choice = truth[item] if right else next(o for o in options if o != truth[item])
            labels.append(Label(item=item, annotator=annotator, choice=choice, options=options))
    return truth, labels


def test_em_recovers_planted_reliabilities_within_0_06():
    rng = random.Random(11)
    accuracies = {f"ann{i}": rng.uniform(0.55, 0.97) for i in range(16)}
    accuracies.update({"adversary1": 0.1, "adversary2": 0.2, "random1": 0.5, "random2": 0.5})  # 20 % bad
    truth, labels = _simulate(seed=1, accuracies=accuracies)
    fit = reliability_fit(labels)
    assert fit.converged
    # Each annotator has ~375 labels: the standard error of an accuracy is at most ~0.026; 0.06 is over 2 s.e.
    errors = {a: abs(fit.reliability[a] - p) for a, p in accuracies.items()}
    assert max(errors.values()) < 0.06, errors
    consensus_right = sum(fit.consensus[i][0] == t for i, t in truth.items()) / len(truth)
    majority_right = _majority_accuracy(labels, truth)
    assert consensus_right > majority_right + 0.02  # weighting by reliability beats counting votes
    confident = [i for i, (_, c) in fit.consensus.items() if c > 0.95]
    assert sum(fit.consensus[i][0] == truth[i] for i in confident) / len(confident) > 0.95


def _majority_accuracy(labels, truth):
    votes = {}
    for label in labels:
        votes.setdefault(label.item, []).append(label.choice)
    return sum(max(set(v), key=lambda o: (v.count(o), o)) == truth[i] for i, v in votes.items()) / len(truth)


def test_gold_items_keep_their_answer_and_anchor_a_majority_of_adversaries():
    # Three adversaries outvote two honest annotators on every item; gold answers reveal who is who.
    accuracies = {"honest1": 0.9, "honest2": 0.9, "bad1": 0.1, "bad2": 0.1, "bad3": 0.1}
    truth, labels = _simulate(seed=2, items=400, accuracies=accuracies)
    without_gold = reliability_fit(labels)
    assert without_gold.reliability["bad1"] > 0.5  # unanchored, the majority looks right
    gold = {i: truth[i] for i in range(60)}
    fit = reliability_fit(labels, gold=gold)
    assert fit.reliability["honest1"] > 0.8 and fit.reliability["bad1"] < 0.2
    assert all(fit.consensus[i] == (truth[i], 1.0) for i in gold)


def test_k_way_choices_use_the_options_of_each_item():
    rng = random.Random(4)
    labels, truth = [], {}
    accuracies = {"good": 0.9, "ok": 0.7, "poor": 0.4, "other": 0.8}
    for item in range(600):
        options = ("x", "y", "z")
        truth[item] = rng.choice(options)
        for annotator, p in accuracies.items():
            choice = truth[item] if rng.random() < p else rng.choice([o for o in options if o != truth[item]])
            labels.append(Label(item=item, annotator=annotator, choice=choice, options=options))
    fit = reliability_fit(labels)
    for annotator, p in accuracies.items():
        assert fit.reliability[annotator] == pytest.approx(p, abs=0.06)


def test_a_choice_outside_the_options_is_named():
    with pytest.raises(ValueError, match="'c' is not one of"):
        reliability_fit([Label(item=1, annotator="a", choice="c", options=("a", "b"))])


def test_weights_are_zero_at_chance_and_one_when_perfect():
    assert reliability_weight(0.5) == 0.0 and reliability_weight(0.2) == 0.0
    assert reliability_weight(1.0) == 1.0 and reliability_weight(0.75) == pytest.approx(0.5)
    assert reliability_weight(1 / 3, options=3) == 0.0
