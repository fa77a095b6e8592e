"""Inter-annotator agreement statistics, in plain Python (the web side has no numpy).

Reliability data is a mapping ``unit → {coder → value}``: a unit is what was judged (a comparison, a candidate's
criterion), a coder is an annotator. Units judged by fewer than two coders carry no information about agreement
and are ignored, as every statistic here prescribes.

Checked against the ``krippendorff`` package, scikit-learn's ``cohen_kappa_score`` and the published worked examples
named in each docstring (tests/annotation/test_quality_agreement.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from itertools import combinations
from typing import Literal

Level = Literal["nominal", "ordinal", "interval"]
Units = Mapping[Hashable, Mapping[Hashable, Hashable]]


def krippendorff_alpha(units: Units, *, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha = 1 − D_o / D_e over the coincidence matrix (Krippendorff 2011, "Computing
    Krippendorff's Alpha-Reliability", §B–§C). Missing values are allowed; values must be numbers for the ordinal
    and interval levels. None when it is undefined: fewer than two pairable values, or every value the same
    (D_e = 0).

    >>> round(krippendorff_alpha({1: {"a": "x", "b": "x"}, 2: {"a": "y", "b": "y"}, 3: {"a": "x", "b": "y"}}), 3)
    0.444
    """
    coincidences: Counter[tuple] = Counter()  # o_ck
    for ratings in units.values():
        values = [v for v in ratings.values() if v is not None]
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[(c, k)] += 1.0 / (m - 1)
    marginals: Counter = Counter()  # n_c
    for (c, _), o in coincidences.items():
        marginals[c] += o
    n = sum(marginals.values())
    if n < 2:
        return None
    delta = _distance(level, marginals)
    observed = sum(o * delta(c, k) for (c, k), o in coincidences.items()) / n
    expected = sum(marginals[c] * marginals[k] * delta(c, k) for c in marginals for k in marginals) / (n * (n - 1))
    if expected == 0:
        return None
    return 1.0 - observed / expected


def _distance(level: Level, marginals: Mapping) -> callable:
    """δ²(c, k) of the level of measurement (Krippendorff 2011, §C)."""
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "interval":
        return lambda c, k: float(c - k) ** 2
    if level == "ordinal":
        # (Σ_{g=c..k} n_g − (n_c + n_k)/2)²: values that were never used lie between nothing, so only the
        # observed ones are needed, in order.
        ordered = sorted(marginals)
        position = {v: i for i, v in enumerate(ordered)}
        cumulative = [0.0]
        for v in ordered:
            cumulative.append(cumulative[-1] + marginals[v])

        def ordinal(c, k):
            lo, hi = sorted((position[c], position[k]))
            between = cumulative[hi + 1] - cumulative[lo]
            return (between - (marginals[c] + marginals[k]) / 2) ** 2

        return ordinal
    raise ValueError(f"level must be 'nominal', 'ordinal' or 'interval', got {level!r}")


def fleiss_kappa(units: Units) -> float | None:
    """Fleiss' kappa (Fleiss 1971) over units' category counts; units with different numbers of raters are allowed
    (each unit's agreement P_i uses its own n_i). None when undefined (no unit with two raters, or chance agreement
    is 1).

    Worked example: Wikipedia's "Fleiss' kappa" table (14 raters, 10 subjects, 5 categories) gives κ = 0.210.
    """
    agreements, totals = [], Counter()
    for ratings in units.values():
        counts = Counter(v for v in ratings.values() if v is not None)
        n = sum(counts.values())
        if n < 2:
            continue
        agreements.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
        totals.update(counts)
    grand = sum(totals.values())
    if not agreements:
        return None
    observed = sum(agreements) / len(agreements)
    chance = sum((c / grand) ** 2 for c in totals.values())
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def cohen_kappa(first: Iterable[Hashable], second: Iterable[Hashable]) -> float | None:
    """Cohen's kappa (Cohen 1960) between two coders' labels on the same items, in order. None when undefined (no
    items, or both coders always used one and the same label)."""
    pairs = list(zip(first, second, strict=True))
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(left[c] * right[c] for c in left) / (n * n)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def cohen_kappa_pairs(units: Units, *, min_shared: int = 1) -> dict[tuple[Hashable, Hashable], dict]:
    """Cohen's kappa for every pair of coders who share at least ``min_shared`` units:
    ``{(a, b): {"kappa": κ or None, "shared": n, "agreement": share equal}}`` with a < b."""
    shared: defaultdict[tuple, list[tuple]] = defaultdict(list)
    for ratings in units.values():
        present = sorted(((c, v) for c, v in ratings.items() if v is not None), key=lambda cv: str(cv[0]))
        for (a, va), (b, vb) in combinations(present, 2):
            shared[(a, b)].append((va, vb))
    out = {}
    for pair, values in shared.items():
        if len(values) < min_shared:
            continue
        out[pair] = {
            "kappa": cohen_kappa([v for v, _ in values], [v for _, v in values]),
            "shared": len(values),
            "agreement": sum(a == b for a, b in values) / len(values),
        }
    return out


def coder_agreement(units: Units) -> dict[Hashable, dict]:
    """Per coder: the share of their pairings with other coders on the same unit that agree
    (``{"agreement": share or None, "pairings": n}``) — how often a second opinion matches theirs."""
    hits: Counter = Counter()
    pairings: Counter = Counter()
    for ratings in units.values():
        present = [(c, v) for c, v in ratings.items() if v is not None]
        for c, v in present:
            for d, w in present:
                if c != d:
                    pairings[c] += 1
                    hits[c] += v == w
    return {c: {"agreement": hits[c] / pairings[c] if pairings[c] else None, "pairings": pairings[c]} for c in pairings}


# --- spans ---------------------------------------------------------------------------------------------------------

Span = tuple[Hashable, str, float, float]
"""(item, category, start, end): an item is what was marked (a judgment's candidate text), end exclusive."""


def span_agreement(first: Iterable[Span], second: Iterable[Span]) -> dict[str, dict]:
    """Overlap F1 per category between two annotators' spans on the same items: F1 = 2·|A∩B| / (|A| + |B|), where
    |·| is the marked length (characters for text, seconds for audio) after merging each side's overlapping spans.
    The measure is symmetric, so neither side is the reference. ``{category: {"f1", "first", "second", "overlap"}}``;
    a category neither marked is absent."""
    a, b = _merged(first), _merged(second)
    out = {}
    for category in sorted({cat for _, cat in a} | {cat for _, cat in b}):
        items = {item for item, cat in a if cat == category} | {item for item, cat in b if cat == category}
        la = lb = both = 0.0
        for item in items:
            sa, sb = a.get((item, category), []), b.get((item, category), [])
            la += sum(e - s for s, e in sa)
            lb += sum(e - s for s, e in sb)
            both += _intersection(sa, sb)
        out[category] = {"f1": 2 * both / (la + lb) if la + lb else None, "first": la, "second": lb, "overlap": both}
    return out


def _merged(spans: Iterable[Span]) -> dict[tuple, list[tuple[float, float]]]:
    by_key: defaultdict[tuple, list] = defaultdict(list)
    for item, category, start, end in spans:
        if end <= start:
            raise ValueError(f"span on {item!r} ({category}) ends at {end}, not after its start {start}")
        by_key[(item, category)].append((start, end))
    merged = {}
    for key, intervals in by_key.items():
        out: list[list[float]] = []
        for s, e in sorted(intervals):
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        merged[key] = [tuple(x) for x in out]
    return merged


def _intersection(first: list[tuple[float, float]], second: list[tuple[float, float]]) -> float:
    """Total overlap of two sorted lists of disjoint intervals (a two-pointer walk)."""
    i = j = 0
    total = 0.0
    while i < len(first) and j < len(second):
        lo, hi = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if hi > lo:
            total += hi - lo
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return total
