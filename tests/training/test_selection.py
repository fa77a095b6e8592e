"""Choosing comparisons from scored candidates: best-vs-worst pairs and most-disputed pairs, on hand-made numbers."""

import doctest
import importlib.util
import math

import pytest

from training.ml import selection
from training.ml.selection import (
    BestWorstPair,
    DisputedPair,
    rank_pairs_by_disagreement,
    scored_candidates,
    select_best_worst,
)

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="pair_uncertainty needs torch")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_best_worst_takes_the_highest_and_lowest_mean_reward():
    pairs = select_best_worst([[0.2, 1.5, -0.3, 0.9], [3.0, 1.0]])
    assert pairs == [BestWorstPair(0, 1, 2, pytest.approx(1.8)), BestWorstPair(1, 0, 1, 2.0)]


def test_best_worst_breaks_ties_by_the_lowest_index():
    pairs = select_best_worst([[1.0, 0.0, 1.0, 0.0]])
    assert pairs == [BestWorstPair(0, 0, 1, 1.0)]


def test_best_worst_skips_prompts_that_tie_within_min_gap():
    scores = [[0.5, 0.5, 0.5], [0.0, 0.3], [0.0, 0.31], [1.0]]
    assert [p.prompt_index for p in select_best_worst(scores)] == [1, 2]  # all-equal and K=1 give nothing
    assert [p.prompt_index for p in select_best_worst(scores, min_gap=0.3)] == [2]  # a gap of exactly min_gap ties


def test_best_worst_rejects_nan_and_a_negative_gap():
    with pytest.raises(ValueError, match="NaN"):
        select_best_worst([[0.0, float("nan")]])
    with pytest.raises(ValueError, match="min_gap"):
        select_best_worst([[0.0, 1.0]], min_gap=-1)


def test_scored_candidates_gives_mean_and_member_std():
    (row,) = scored_candidates([[[1.0, 4.0], [3.0, 4.0], [5.0, 4.0]]])  # M=3, K=2
    assert [(c.prompt_index, c.candidate_index) for c in row] == [(0, 0), (0, 1)]
    assert row[0].mean_reward == 3.0 and row[0].disagreement == 2.0  # unbiased std of 1, 3, 5
    assert row[1].mean_reward == 4.0 and row[1].disagreement == 0.0
    (single,) = scored_candidates([[[1.0, 2.0]]])  # one member: no spread
    assert [c.disagreement for c in single] == [0.0, 0.0]


@needs_torch
def test_disagreement_picks_each_prompts_most_disputed_pair_and_sorts_globally():
    # Prompt 0: members agree on every gap (candidate 2 vs 0 is +2 for both) — zero disagreement everywhere.
    # Prompt 1: members disagree about 0 vs 1 (+2 / −2) and agree about 0 vs 2.
    rewards = [
        [[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]],
        [[0.0, 2.0, 0.0], [0.0, -2.0, 0.0]],
    ]
    ranked = rank_pairs_by_disagreement(rewards)
    assert [(p.prompt_index, p.i, p.j) for p in ranked] == [(1, 0, 1), (0, 0, 1)]
    # Hand value: std (unbiased, M=2) of σ(−2) and σ(2) = |σ(2) − σ(−2)| / √2.
    assert ranked[0].disagreement == pytest.approx(abs(sigmoid(2) - sigmoid(-2)) / math.sqrt(2))
    assert ranked[1].disagreement == pytest.approx(0.0)


@needs_torch
def test_one_member_ranks_by_its_own_uncertainty_the_pairs_closest_to_a_coin_flip():
    ranked = rank_pairs_by_disagreement([[[0.0, 1.0]], [[3.0, -1.0, 2.0]], [[0.0, 0.0]]])
    # Prompt 2's tie is a coin flip (0.5); prompt 1's closest pair is (0, 2), gap 1, like prompt 0's (0, 1).
    coin_flip_distance = 0.5 - (sigmoid(1.0) - 0.5)
    assert ranked == [
        DisputedPair(2, 0, 1, 0.5),
        DisputedPair(0, 0, 1, pytest.approx(coin_flip_distance)),
        DisputedPair(1, 0, 2, pytest.approx(coin_flip_distance)),
    ]


@needs_torch
def test_disagreement_with_k_2_limit_and_single_candidate_prompts():
    rewards = [
        [[0.0, 1.0], [0.0, -1.0]],  # disputed
        [[0.0], [1.0]],  # K=1: no pair
        [[0.0, 3.0], [0.0, -3.0]],  # more disputed
    ]
    hand = (sigmoid(3) - sigmoid(-3)) / math.sqrt(2)  # std of the two members' σ(r_0 − r_1), r gaps −3 and +3
    assert rank_pairs_by_disagreement(rewards, limit=1) == [DisputedPair(2, 0, 1, pytest.approx(hand))]
    assert [p.prompt_index for p in rank_pairs_by_disagreement(rewards)] == [2, 0]


@needs_torch
def test_disagreement_reuses_pair_uncertainty():
    import torch

    from training.ml.reward import pair_uncertainty

    table = torch.tensor([[0.3, -1.2, 2.0, 0.1], [1.1, 0.4, -0.5, 0.0], [-0.2, 0.9, 1.5, 2.2]])  # (M=3, K=4)
    (top,) = rank_pairs_by_disagreement([table])
    expected = pair_uncertainty(table[:, [top.i]], table[:, [top.j]])["disagreement"].item()
    assert top.disagreement == pytest.approx(expected)
    others = [
        pair_uncertainty(table[:, [i]], table[:, [j]])["disagreement"].item() for i in range(4) for j in range(i + 1, 4)
    ]
    assert top.disagreement == pytest.approx(max(others))


def test_the_docstring_examples_hold():
    assert doctest.testmod(selection, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0
