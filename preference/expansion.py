"""One judgment → ordered candidate pairs, and the agreement of several judgments on one comparison.

The rules (documented at length in ``training.ml.pairs.build_preference_pairs``, which uses them):

- **winner** among K candidates → K−1 pairs (winner, each other), margin |strength| × ``margin_scale``;
- **ranking** (best first) → all K(K−1)/2 ordered pairs (higher-ranked, lower-ranked), margin 0;
- **tie** → every unordered pair once with label 0.5 and margin 0.

Each pair is ``(better, worse, label, margin)``; ``label`` is the probability that ``better`` wins (1.0, or 0.5
for a tie).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

OrderedPair = tuple[Hashable, Hashable, float, float]


class ExpansionError(ValueError):
    """The answer does not fit the candidates (a message without the judgment's id; callers add it)."""


def ordered_pairs(
    candidate_ids: Sequence[Hashable],
    *,
    winner: Hashable | None = None,
    tie: bool = False,
    ranking: Sequence[Hashable] | None = None,
    strength: float | None = None,
    use_strength_margin: bool = True,
    margin_scale: float = 1.0,
) -> list[OrderedPair]:
    """``(better, worse, label, margin)`` for one answer, in a deterministic order."""
    ids = list(candidate_ids)
    if len(ids) < 2:
        raise ExpansionError("a comparison needs at least 2 candidates")
    if sum([winner is not None, ranking is not None, bool(tie)]) != 1:
        raise ExpansionError("give exactly one of winner, ranking or tie=True")
    if tie:
        return [(a, b, 0.5, 0.0) for a, b in itertools.combinations(ids, 2)]
    if ranking is not None:
        ranking = list(ranking)
        if sorted(map(str, ranking)) != sorted(map(str, ids)) or len(set(ranking)) != len(ranking):
            raise ExpansionError("ranking must order every candidate exactly once")
        # combinations() keeps the ranking's order, so the first of each pair is the better one.
        return [(a, b, 1.0, 0.0) for a, b in itertools.combinations(ranking, 2)]
    if winner not in ids:
        raise ExpansionError(f"winner {winner!r} is not a candidate")
    margin = abs(float(strength)) * margin_scale if use_strength_margin and strength is not None else 0.0
    return [(winner, other, 1.0, margin) for other in ids if other != winner]


class PairVotes:
    """Votes of several judgments of ONE comparison on each candidate pair (ties count half each way)."""

    def __init__(self, expansions: Iterable[Sequence[OrderedPair]] = ()):
        # Each voted pair → each of its two candidates → its votes. Plain dicts, not Counters: an export builds
        # one of these per comparison, and Counter's missing-key hook ran in Python on every first vote.
        self.tally: dict[frozenset, dict[Hashable, float]] = {}
        for pairs in expansions:
            self.add(pairs)

    def add(self, pairs: Sequence[OrderedPair]) -> None:
        tally = self.tally
        for better, worse, label, _ in pairs:
            key = frozenset((better, worse))
            votes = tally.get(key)
            if votes is None:
                tally[key] = {better: label, worse: 1.0 - label}
            else:
                votes[better] += label
                votes[worse] += 1.0 - label

    def pair_agreement(self, better: Hashable, worse: Hashable) -> float | None:
        """Share of the votes on this pair that agree with ``better`` over ``worse``; None when voted once."""
        votes = self.tally.get(frozenset((better, worse)))
        if votes is None:
            return None
        total = votes[better] + votes[worse]
        return votes[better] / total if total > 1.0 else None

    def comparison_agreement(self) -> float | None:
        """Share of all pair votes that side with each pair's majority; None when no pair was voted twice.

        For a pairwise comparison this is the majority's share of the judgments (3 of 4 → 0.75; a 2–2 split → 0.5).
        """
        agreeing = total = 0.0
        repeated = False
        for votes in self.tally.values():
            both = sum(votes.values())
            repeated = repeated or both > 1.0
            agreeing += max(votes.values(), default=0.0)
            total += both
        return agreeing / total if repeated and total else None

    def scores(self) -> Counter:
        """Each candidate's share of wins over the pairs it took part in (Copeland-style, ties half)."""
        won: Counter = Counter()
        for votes in self.tally.values():
            for candidate, value in votes.items():
                won[candidate] += value
        return won
