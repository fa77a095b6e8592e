"""Which sampled candidates become comparisons: best-vs-worst pairs for training, most-disputed pairs for annotators.

Input is plain data: for each prompt, the rewards its K candidates got from each of the M ensemble members, an
(M, K) table (nested lists or a tensor); ``RewardModel.score`` returns exactly that for one prompt's K responses.
Output is plain data too: named tuples of indices and a number, in a documented, deterministic order.

- :func:`select_best_worst` — West-of-N (Pace et al. 2024, "West-of-N: Synthetic Preferences for Self-Improving
  Reward Models") and the RLHF-Workflow recipe (Dong et al. 2024, §3.2): sample K, score with the reward model, keep
  the best as chosen and the worst as rejected.
- :func:`rank_pairs_by_disagreement` — active selection: ask people about the pair the ensemble disputes most, by
  the same ``disagreement`` (std over members of σ(r_i − r_j)) that :func:`training.ml.reward.pair_uncertainty`
  defines for labelled pairs.

Only :func:`rank_pairs_by_disagreement` needs torch (through ``pair_uncertainty``); the rest is plain Python.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

MemberRewards = Any
"""One prompt's rewards, (M, K): ``rewards[m][k]`` from member m for candidate k (nested sequences or a tensor)."""


@dataclass(frozen=True)
class ScoredCandidate:
    """One candidate's ensemble summary."""

    prompt_index: int
    """Position of the prompt in the input list."""
    candidate_index: int
    """Position of the candidate among its prompt's K."""
    mean_reward: float
    """Ensemble-mean reward."""
    disagreement: float
    """Std over members of the reward (unbiased, as ``pair_uncertainty``; 0 for one member). On the reward's own
    scale, so only comparable within one model; pairs are ranked by the bounded pair disagreement instead."""


class BestWorstPair(NamedTuple):
    prompt_index: int
    chosen_index: int
    rejected_index: int
    gap: float
    """Mean reward of the chosen minus that of the rejected, > ``min_gap``."""


class DisputedPair(NamedTuple):
    prompt_index: int
    i: int
    j: int
    """Candidate indices, i < j. The pair carries no order: the disagreement is the same either way round."""
    disagreement: float


def _rows(table: MemberRewards) -> list[list[float]]:
    """(M, K) as lists of floats; rejects ragged tables and NaN (a NaN reward would make every order arbitrary)."""
    rows = table.tolist() if hasattr(table, "tolist") else [list(row) for row in table]
    if not rows or len({len(row) for row in rows}) != 1:
        raise ValueError("member rewards must be a non-empty (M, K) table")
    if any(math.isnan(x) for row in rows for x in row):
        raise ValueError("member rewards contain NaN")
    return rows


def scored_candidates(member_rewards: Sequence[MemberRewards]) -> list[list[ScoredCandidate]]:
    """Per prompt, each candidate's ensemble-mean reward and member std, from per-prompt (M, K) tables.

    >>> [[(c.mean_reward, c.disagreement) for c in row] for row in scored_candidates([[[1.0, 0.0], [3.0, 0.0]]])]
    [[(2.0, 1.4142135623730951), (0.0, 0.0)]]
    """
    out = []
    for p, table in enumerate(member_rewards):
        columns = list(zip(*_rows(table), strict=True))  # K tuples of M rewards
        out.append(
            [
                ScoredCandidate(
                    prompt_index=p,
                    candidate_index=k,
                    mean_reward=statistics.fmean(col),
                    disagreement=statistics.stdev(col) if len(col) > 1 else 0.0,
                )
                for k, col in enumerate(columns)
            ]
        )
    return out


def select_best_worst(scores: Sequence[Sequence[float]], *, min_gap: float = 0.0) -> list[BestWorstPair]:
    """One (chosen = best, rejected = worst) pair per prompt from its K ensemble-mean rewards, in prompt order.

    A prompt is skipped when its best and worst are within ``min_gap`` (gap <= min_gap: with the default 0, a prompt
    whose candidates all score the same gives no pair) or when it has fewer than two candidates. Ties are broken
    by position: among equal best rewards the lowest candidate index is chosen, and among equal worst rewards the
    lowest index is rejected — so the result depends only on the numbers and their order.

    >>> select_best_worst([[0.1, 0.9, 0.5], [2.0, 2.0], [0.0, 1.0, 1.0, 0.0]])
    [BestWorstPair(prompt_index=0, chosen_index=1, rejected_index=0, gap=0.8), BestWorstPair(prompt_index=2, chosen_index=1, rejected_index=0, gap=1.0)]
    """  # noqa: E501 (a doctest line)
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    pairs = []
    for p, row in enumerate(scores):
        row = [float(x) for x in row]
        if any(math.isnan(x) for x in row):
            raise ValueError(f"prompt {p}: scores contain NaN")
        if len(row) < 2:
            continue
        # max/min return the first of equal values: the lowest index wins each tie.
        best = max(range(len(row)), key=row.__getitem__)
        worst = min(range(len(row)), key=row.__getitem__)
        gap = row[best] - row[worst]
        if gap > min_gap:
            pairs.append(BestWorstPair(p, best, worst, gap))
    return pairs


def rank_pairs_by_disagreement(
    member_rewards: Sequence[MemberRewards], *, limit: int | None = None
) -> list[DisputedPair]:
    """Each prompt's most disputed candidate pair, most disputed first (across prompts), at most ``limit`` of them.

    For every prompt with K >= 2, all K(K−1)/2 pairs get ``disagreement`` = std over members of σ(r_i − r_j)
    (:func:`training.ml.reward.pair_uncertainty`: bounded in [0, 0.5], comparable across reward scales). A single
    model has no disagreement to offer, so with one member the score is its own uncertainty instead,
    0.5 − |σ(r_i − r_j) − 0.5| (also in [0, 0.5]: the pairs it finds closest to a coin flip; uncertainty sampling).
    A prompt contributes its maximum (ties: the first pair in (i, j) order); prompts are then sorted by
    disagreement, descending, ties by prompt index. One pair per prompt spreads a labelling budget over prompts
    instead of spending it on the K² pairs of one confusing prompt.

    ``member_rewards[p]`` is prompt p's (M, K) table; M must be the same for every prompt (one ensemble).
    """
    import torch

    from .reward import pair_uncertainty

    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    best_per_prompt = []
    for p, table in enumerate(member_rewards):
        rewards = torch.tensor(_rows(table), dtype=torch.float64)  # (M, K)
        k = rewards.shape[1]
        if k < 2:
            continue
        i, j = zip(*itertools.combinations(range(k), 2), strict=True)  # P = K(K−1)/2 pairs, lexicographic
        summary = pair_uncertainty(rewards[:, list(i)], rewards[:, list(j)])
        if rewards.shape[0] > 1:
            disagreement = summary["disagreement"]  # (P,)
        else:
            disagreement = 0.5 - (summary["prob"] - 0.5).abs()  # (P,)
        top = int(torch.argmax(disagreement))  # the first maximum
        best_per_prompt.append(DisputedPair(p, i[top], j[top], float(disagreement[top])))
    best_per_prompt.sort(key=lambda pair: (-pair.disagreement, pair.prompt_index))
    return best_per_prompt if limit is None else best_per_prompt[:limit]
