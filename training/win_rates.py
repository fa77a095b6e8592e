"""The human win rate of each policy round's new policy against the previous one.

A policy round pushes ``policy_vs_previous`` comparisons (``training.steps.push``) whose stored candidate order is
``[new, previous]`` (the workbench shuffles what it shows). Every judgment on them is a vote: the new answer
won, lost, or tied (half a win). The rate comes with a Wilson 95 % interval; people's verdict, next to the reward
model's own estimate in the round's metrics.
"""

from __future__ import annotations

from collections import defaultdict

from annotation.models import Comparison, Judgment
from preference.stats import wilson_interval

HEAD_TO_HEAD = "policy_vs_previous"


def human_win_rates(*, round_ids: list[int]) -> dict[int, dict]:
    """``{round id: {"wins", "losses", "ties", "n", "rate", "low", "high"}}`` for the rounds that have votes."""
    if not round_ids:
        return {}
    comparisons = dict(
        (pk, (origin.get("round"), candidate_ids))
        for pk, origin, candidate_ids in Comparison.objects.filter(
            origin__purpose=HEAD_TO_HEAD, origin__round__in=round_ids
        ).values_list("pk", "origin", "candidate_ids")
    )
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"wins": 0, "losses": 0, "ties": 0})
    votes = Judgment.objects.filter(comparison_id__in=comparisons, comparison__is_gold=False)
    for comparison_id, winner_id, tie in votes.values_list("comparison_id", "winner_id", "tie"):
        round_id, (new, previous) = comparisons[comparison_id]
        if tie:
            counts[round_id]["ties"] += 1
        elif winner_id == new:
            counts[round_id]["wins"] += 1
        elif winner_id == previous:
            counts[round_id]["losses"] += 1
    return {round_id: _rate(**c) for round_id, c in counts.items()}


def _rate(*, wins: int, losses: int, ties: int) -> dict:
    n = wins + losses + ties
    score = wins + ties / 2
    low, high = wilson_interval(score, n)
    return {"wins": wins, "losses": losses, "ties": ties, "n": n, "rate": score / n, "low": low, "high": high}
