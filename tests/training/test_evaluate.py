"""Held-out metrics on hand-made rewards (no model needed)."""

import pytest

pytest.importorskip("torch")

import torch

from preference.stats import wilson_interval
from training.ml.evaluate import compare_metrics, expected_calibration_error, reward_metrics
from training.ml.pairs import PreferencePair


def pair(i, *, chosen="aaaa", rejected="bb", label=1.0, agreement=None, chosen_shown_first=None):
    return PreferencePair(
        prompt_id=i,
        prompt="p",
        chosen_id=f"{i}c",
        chosen=chosen,
        rejected_id=f"{i}r",
        rejected=rejected,
        label=label,
        margin=0.0,
        weight=1.0,
        judgment_ids=(i,),
        comparison_id=i,
        annotator_id=None,
        agreement=agreement,
        chosen_shown_first=chosen_shown_first,
    )


def test_ece_by_hand():
    # confidences 0.9, 0.9 (one right, one wrong: p = 0.1 picks rejected) and 0.6 (right)
    prob = torch.tensor([0.9, 0.1, 0.6])
    # bin of 0.9: accuracy 0.5, confidence 0.9 → gap 0.4, share 2/3; bin of 0.6: gap 0.4, share 1/3
    assert expected_calibration_error(prob, n_bins=5) == pytest.approx(0.4)
    assert expected_calibration_error(torch.tensor([1.0, 1.0])) == pytest.approx(0.0)


def test_accuracy_agreement_levels_and_ties():
    pairs = [
        pair(0, agreement=1.0),
        pair(1, agreement=2 / 3),
        pair(2, agreement=1 / 3),
        pair(3),
        pair(4, label=0.5),
    ]
    chosen = torch.tensor([1.0, 1.0, 0.0, 1.0, 5.0])
    rejected = torch.tensor([0.0, 2.0, 1.0, 0.0, 0.0])
    m = reward_metrics(pairs, chosen, rejected)
    assert m["n_pairs"] == 5 and m["n_decided"] == 4
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["accuracy_by_agreement"] == {
        "single": {"n": 1, "accuracy": 1.0},
        "unanimous": {"n": 1, "accuracy": 1.0},
        "majority": {"n": 1, "accuracy": 0.0},
        "contested": {"n": 1, "accuracy": 0.0},
    }
    assert m["members"] == 1 and m["disagreement"] == 0.0


def test_a_model_that_does_not_beat_preferring_the_shorter_answer_is_flagged():
    # 7 of 10 held-out winners are the shorter answer; the model gets 6 right, so "prefer shorter" beats it.
    pairs = [pair(i, chosen="a", rejected="bbbb") for i in range(7)]
    pairs += [pair(i, chosen="aaaa", rejected="b") for i in range(7, 10)]
    right = torch.tensor([1.0] * 6 + [-1.0] * 4)
    m = reward_metrics(pairs, right, torch.zeros(10))
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["baselines"]["length"] == {
        "rule": "shorter",
        "accuracy": pytest.approx(0.7),
        "ci": pytest.approx(list(wilson_interval(7, 10))),
        "n": 10,
        "model_accuracy": pytest.approx(0.6),
    }
    assert m["beats_baselines"] is False
    lo, hi = m["accuracy_ci"]
    assert (lo, hi) == pytest.approx(wilson_interval(6, 10)) and lo < 0.6 < hi


def test_position_baseline_counts_only_pairs_whose_shown_order_was_recorded():
    # Annotators picked the left candidate 3 times of 4 recorded; one pair has no shown order; equal lengths.
    shown = [True, True, True, False, None]
    pairs = [pair(i, chosen="aa", rejected="bb", chosen_shown_first=s) for i, s in enumerate(shown)]
    m = reward_metrics(pairs, torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0]), torch.zeros(5))
    position = m["baselines"]["position"]
    assert (position["rule"], position["accuracy"], position["n"], position["model_accuracy"]) == (
        "first shown",
        0.75,
        4,
        1.0,
    )
    assert m["baselines"]["length"]["accuracy"] == 0.5  # equal lengths: a coin flip
    assert m["beats_baselines"] is True
    unrecorded = reward_metrics(pairs[4:], torch.tensor([1.0]), torch.zeros(1))
    assert unrecorded["baselines"]["position"] is None


def test_length_bias_is_measured_against_the_data_baseline():
    # Every chosen is longer; a model that scores length exactly has correlation 1 and always prefers longer.
    pairs = [pair(i, chosen="x" * (5 + i), rejected="x" * (1 + i)) for i in range(6)]
    lengths_c = torch.tensor([len(p.chosen) for p in pairs], dtype=torch.float)
    lengths_r = torch.tensor([len(p.rejected) for p in pairs], dtype=torch.float)
    m = reward_metrics(pairs, lengths_c, lengths_r)
    assert m["reward_length_corr"] == pytest.approx(1.0)
    assert m["prefers_longer_rate"] == 1.0 and m["data_longer_chosen_rate"] == 1.0


def test_ensemble_disagreement_is_the_member_spread_of_the_preference_probability():
    pairs = [pair(0), pair(1)]
    chosen = torch.tensor([[4.0, 1.0], [4.0, -1.0]])  # (M=2, B=2): agree on pair 0, split on pair 1
    rejected = torch.zeros(2, 2)
    m = reward_metrics(pairs, chosen, rejected)
    split = torch.sigmoid(torch.tensor([1.0, -1.0])).std().item()
    assert m["disagreement"] == pytest.approx(split / 2)
    assert m["accuracy"] == pytest.approx(0.5)  # mean gaps 4 and 0: an equal reward is not a right order
    assert m["member_accuracy"] == pytest.approx(0.75)


def test_compare_with_the_previous_version():
    now = {"accuracy": 0.8, "ece": 0.05, "n_pairs": 100, "accuracy_by_agreement": {"unanimous": {"accuracy": 0.9}}}
    before = {"accuracy": 0.7, "ece": 0.10, "n_pairs": 90, "accuracy_by_agreement": {"unanimous": {"accuracy": 0.95}}}
    diff = compare_metrics(now, before)
    assert diff["accuracy"]["delta"] == pytest.approx(0.1) and diff["accuracy"]["improved"] is True
    assert diff["ece"]["improved"] is True
    assert diff["n_pairs"]["improved"] is None
    assert diff["accuracy_by_agreement.unanimous.accuracy"]["improved"] is False
    assert compare_metrics(now, None) == {}
