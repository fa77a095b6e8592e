"""Annotator reliability and consensus labels: a one-coin Dawid–Skene model fitted by EM, in plain Python.

Dawid & Skene (1979) give each annotator a confusion matrix; with pairwise choices in the comparison's stored order
(which the annotator never saw — the order on screen is shuffled) a full matrix has nothing to learn beyond one
number, so each annotator ``a`` has one accuracy ``p_a``: the chance they pick the truly better candidate, the rest
spread evenly over the others ("one-coin" model; Raykar et al. 2010, §2). Gold comparisons are items whose truth
is known: they pin the scale and are never re-estimated.

EM (Dawid & Skene 1979, §2.2):
  E-step  log P(z_i = k) ∝ log π_k + Σ_{a labels i} [ℓ_ai = k]·log p_a + [ℓ_ai ≠ k]·log((1 − p_a)/(K_i − 1))
  M-step  p_a = (Σ_i P(z_i = ℓ_ai) + α − 1) / (n_a + α + β − 2)   (a Beta(α, β) prior keeps p_a off 0 and 1)
The class prior π is uniform: candidate order carries no information about which is better.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Label:
    """One annotator's choice on one item (a comparison): which of ``options`` they picked."""

    item: Hashable
    annotator: Hashable
    choice: Hashable
    options: tuple[Hashable, ...]


@dataclass
class ReliabilityFit:
    reliability: dict[Hashable, float]
    """Annotator → estimated accuracy p_a in (0, 1)."""
    consensus: dict[Hashable, tuple[Hashable, float]]
    """Item → (most probable answer, its posterior probability)."""
    labels: dict[Hashable, int] = field(default_factory=dict)
    """Annotator → number of labels the fit used."""
    iterations: int = 0
    converged: bool = False


def reliability_fit(
    labels: Iterable[Label],
    *,
    gold: Mapping[Hashable, Hashable] | None = None,
    prior: tuple[float, float] = (2.0, 2.0),
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> ReliabilityFit:
    """Fit the one-coin model; ``gold`` maps items with a known answer to it.

    Starts from majority vote (gold items at their answer), which is the usual start and avoids the label-switched
    solution where everyone is "reliably wrong".
    """
    labels = list(labels)
    gold = dict(gold or {})
    alpha, beta = prior
    by_item: defaultdict[Hashable, list[Label]] = defaultdict(list)
    for label in labels:
        if label.choice not in label.options:
            raise ValueError(f"item {label.item!r}: the choice {label.choice!r} is not one of {label.options!r}")
        by_item[label.item].append(label)

    posterior = {item: _majority(item_labels, gold.get(item)) for item, item_labels in by_item.items()}
    reliability: dict[Hashable, float] = {}
    converged, iterations = False, 0
    while iterations < max_iterations:
        iterations += 1
        # M-step: expected correct answers per annotator.
        correct: Counter = Counter()
        total: Counter = Counter()
        for label in labels:
            correct[label.annotator] += posterior[label.item].get(label.choice, 0.0)
            total[label.annotator] += 1
        new = {a: (correct[a] + alpha - 1) / (total[a] + alpha + beta - 2) for a in total}
        new = {a: min(max(p, 1e-4), 1 - 1e-4) for a, p in new.items()}
        # E-step: each item's posterior over its options.
        for item, item_labels in by_item.items():
            if item in gold:
                continue
            options = item_labels[0].options
            k = len(options)
            scores = dict.fromkeys(options, 0.0)
            for label in item_labels:
                p = new[label.annotator]
                hit, miss = math.log(p), math.log((1 - p) / (k - 1))
                for option in options:
                    scores[option] += hit if option == label.choice else miss
            top = max(scores.values())
            exp = {o: math.exp(s - top) for o, s in scores.items()}
            norm = sum(exp.values())
            posterior[item] = {o: e / norm for o, e in exp.items()}
        change = max((abs(new[a] - reliability.get(a, 0.5)) for a in new), default=0.0)
        reliability = new
        if change < tolerance:
            converged = True
            break

    consensus = {}
    for item, dist in posterior.items():
        answer = max(dist, key=lambda o: (dist[o], str(o)))
        consensus[item] = (answer, dist[answer])
    return ReliabilityFit(
        reliability=reliability,
        consensus=consensus,
        labels=dict(Counter(label.annotator for label in labels)),
        iterations=iterations,
        converged=converged,
    )


def _majority(item_labels: list[Label], known: Hashable | None) -> dict[Hashable, float]:
    options = item_labels[0].options
    if known is not None:
        return {o: 1.0 if o == known else 0.0 for o in options}
    votes = Counter(label.choice for label in item_labels)
    # Add-one smoothing: an item with one vote starts at 2/3, not certainty.
    total = sum(votes.values()) + len(options)
    return {o: (votes[o] + 1) / total for o in options}


def reliability_weight(p: float, options: int = 2) -> float:
    """A training weight from an accuracy: 0 at chance or worse, 1 for a perfect annotator, linear between
    ((p − 1/K) / (1 − 1/K), the annotator's accuracy above chance). A label from a worse-than-chance annotator is
    dropped rather than flipped: flipping trusts the model about who is adversarial more than we should."""
    chance = 1.0 / options
    return max(0.0, min(1.0, (p - chance) / (1.0 - chance)))
