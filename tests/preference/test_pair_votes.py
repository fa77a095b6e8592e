"""Agreement on one comparison, as the export's card, its ``agreement`` columns and the min-agreement filter read it."""

import pytest

from preference.expansion import PairVotes, ordered_pairs


def votes(*answers: dict, candidates=("a", "b", "c")) -> PairVotes:
    return PairVotes(ordered_pairs(list(candidates), **answer) for answer in answers)


def test_a_pairwise_comparison_agrees_by_its_majority_share():
    three_to_one = votes(*[{"winner": "a"}] * 3, {"winner": "b"}, candidates=("a", "b"))
    assert three_to_one.comparison_agreement() == 0.75
    assert three_to_one.pair_agreement("a", "b") == 0.75
    assert three_to_one.pair_agreement("b", "a") == 0.25
    split = votes({"winner": "a"}, {"winner": "b"}, candidates=("a", "b"))
    assert split.comparison_agreement() == 0.5


def test_a_pair_voted_once_has_no_agreement_and_an_unvoted_pair_none_either():
    once = votes({"winner": "a"}, candidates=("a", "b"))
    assert once.comparison_agreement() is None
    assert once.pair_agreement("a", "b") is None
    assert once.pair_agreement("a", "zzz") is None
    assert list(once.tally) == [frozenset(("a", "b"))]  # asking did not add the unvoted pair


def test_a_tie_counts_half_each_way():
    tied = votes({"tie": True}, {"winner": "a"}, candidates=("a", "b"))
    assert tied.tally[frozenset(("a", "b"))] == {"a": 1.5, "b": 0.5}
    assert tied.comparison_agreement() == 0.75
    assert tied.scores() == {"a": 1.5, "b": 0.5}


def test_k_way_votes_are_counted_per_pair():
    # a > b > c twice, and c first once: pairs (a,b) 2–0, (a,c) 2–1, (b,c) 2–1.
    three = votes({"ranking": ["a", "b", "c"]}, {"ranking": ["a", "b", "c"]}, {"winner": "c"})
    assert three.pair_agreement("a", "b") == 1.0  # c's win says nothing of a against b
    assert three.pair_agreement("a", "c") == pytest.approx(2 / 3)
    assert three.comparison_agreement() == pytest.approx((2 + 2 + 2) / (2 + 3 + 3))
    assert three.scores() == {"a": 4.0, "b": 2.0, "c": 2.0}
