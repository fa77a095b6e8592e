"""Agreement statistics against reference implementations and published worked examples."""

import random

import krippendorff
import pytest
from sklearn.metrics import cohen_kappa_score

from annotation.quality.agreement import (
    coder_agreement,
    cohen_kappa,
    cohen_kappa_pairs,
    fleiss_kappa,
    krippendorff_alpha,
    span_agreement,
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", §C: 4 observers, 12 units, None = missing.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _units(matrix):
    """Rows are coders, columns units (the package's layout) → {unit: {coder: value}}."""
    return {u: {c: row[u] for c, row in enumerate(matrix) if row[u] is not None} for u in range(len(matrix[0]))}


def _package(matrix, level):
    data = [[float("nan") if v is None else v for v in row] for row in matrix]
    return krippendorff.alpha(reliability_data=data, level_of_measurement=level)


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_krippendorffs_worked_example_and_the_package(level, published):
    alpha = krippendorff_alpha(_units(KRIPPENDORFF_2011), level=level)
    assert round(alpha, 3) == published
    assert alpha == pytest.approx(_package(KRIPPENDORFF_2011, level), abs=1e-12)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_matches_the_package_on_random_sparse_data(level):
    rng = random.Random(7)
    for _ in range(20):
        matrix = [[rng.choice([None, -3, -1, 0, 1, 2, 3]) for _ in range(30)] for _ in range(5)]
        expected = _package(matrix, level)
        assert krippendorff_alpha(_units(matrix), level=level) == pytest.approx(expected, abs=1e-9)


def test_alpha_treats_ties_as_a_nominal_choice_of_their_own():
    # Two annotators, three comparisons: candidate 10 or 11 won, or a tie — the package codes them 0, 1, 2.
    units = {1: {"a": 10, "b": 10}, 2: {"a": "tie", "b": "tie"}, 3: {"a": 11, "b": "tie"}, 4: {"a": 11, "b": 11}}
    coded = [[0, 2, 1, 1], [0, 2, 2, 1]]
    assert krippendorff_alpha(units) == pytest.approx(_package(coded, "nominal"))


def test_alpha_is_undefined_without_pairable_values_or_variation():
    assert krippendorff_alpha({1: {"a": 1}, 2: {"b": 2}}) is None
    assert krippendorff_alpha({1: {"a": 1, "b": 1}, 2: {"a": 1, "b": 1}}) is None


def test_fleiss_kappa_matches_the_published_example():
    # Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, counts per category 1..5; κ = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    units = {}
    for subject, counts in enumerate(table):
        values = [category for category, count in enumerate(counts) for _ in range(count)]
        units[subject] = dict(enumerate(values))
    assert round(fleiss_kappa(units), 3) == 0.210


def test_cohen_kappa_matches_scikit_learn():
    rng = random.Random(3)
    for _ in range(20):
        a = [rng.choice("LRT") for _ in range(40)]
        b = [x if rng.random() < 0.6 else rng.choice("LRT") for x in a]
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_cohen_kappa_pairs_uses_only_the_units_both_judged():
    units = {1: {"a": 1, "b": 1, "c": 2}, 2: {"a": 2, "b": 2}, 3: {"a": 1, "c": 1}, 4: {"b": 2, "c": 1}}
    pairs = cohen_kappa_pairs(units)
    assert pairs[("a", "b")] == {"kappa": pytest.approx(cohen_kappa_score([1, 2], [1, 2])), "shared": 2, "agreement": 1}
    assert pairs[("a", "c")]["shared"] == 2 and pairs[("a", "c")]["agreement"] == 0.5
    assert pairs[("b", "c")]["agreement"] == 0.0


def test_coder_agreement_is_the_share_of_matching_second_opinions():
    units = {1: {"a": 1, "b": 1, "c": 2}, 2: {"a": 2, "c": 2}}
    agreement = coder_agreement(units)
    assert agreement["a"] == {"agreement": 2 / 3, "pairings": 3}
    assert agreement["c"] == {"agreement": 1 / 3, "pairings": 3}


def test_span_agreement_is_overlap_f1_per_category():
    first = [("t1", "incorrect", 0, 10), ("t1", "incorrect", 5, 12), ("t2", "irrelevant", 0, 4)]
    second = [("t1", "incorrect", 8, 20), ("t2", "incorrect", 0, 3)]
    result = span_agreement(first, second)
    # incorrect: first marks [0, 12) on t1 (merged), second [8, 20) on t1 and [0, 3) on t2 → overlap 4 of 12 + 15.
    assert result["incorrect"]["f1"] == pytest.approx(2 * 4 / 27)
    assert result["irrelevant"] == {"f1": 0.0, "first": 4, "second": 0, "overlap": 0}
    assert span_agreement(first, first)["incorrect"]["f1"] == 1.0


def test_span_agreement_matches_character_sets():
    rng = random.Random(5)
    for _ in range(30):
        spans = [
            [("t", "c", s, s + rng.randint(1, 8)) for s in (rng.randint(0, 30) for _ in range(rng.randint(1, 4)))]
            for _ in range(2)
        ]
        chars = [set().union(*(range(s, e) for _, _, s, e in side)) for side in spans]
        expected = 2 * len(chars[0] & chars[1]) / (len(chars[0]) + len(chars[1]))
        assert span_agreement(*spans)["c"]["f1"] == pytest.approx(expected)


def test_span_agreement_names_a_span_that_ends_before_it_starts():
    with pytest.raises(ValueError, match="ends at 3"):
        span_agreement([("t", "c", 5, 3)], [])
