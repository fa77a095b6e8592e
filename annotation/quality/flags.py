"""Which annotators to flag for a researcher's review, from their figures. Plain Python, no Django.

A flag is a reason to look, not a verdict: excluding an annotator's labels stays a researcher's decision
(annotation.quality.exclusions). Each rule needs enough evidence before it fires; proportions are judged by their
Wilson interval, so a handful of unlucky answers flags nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from preference.stats import wilson_interval


@dataclass(frozen=True)
class FlagRules:
    min_choices: int = 10
    """Choices (non-tie answers) an annotator needs before the consensus, position and length rules apply."""
    consensus_below: float = 0.5
    """Flag when agreement with the consensus (on comparisons others judged too) is below this."""
    min_gold: int = 5
    gold_below: float = 0.6
    """Flag when even the upper end of the gold accuracy's 95 % interval is below this."""
    too_fast_ms: int = 1500
    too_fast_share: float = 0.3
    """Flag when the median time per judgment is under ``too_fast_ms`` or under this share of the project's median
    of annotators' medians."""
    one_sided: float = 0.8
    """Flag when the 95 % interval of the left (or longer) share lies wholly above this, or wholly below 1 − it."""
    min_position_checks: int = 10
    consistency_below: float = 0.6
    """Flag when even the upper end of the 95 % interval of the position-check consistency (the same answer with
    the candidates swapped) is below this: a careful annotator repeats most answers, one who clicks a side repeats
    none, a random clicker about half (annotation.quality.position)."""


def annotator_flags(figures: dict, *, project_median_ms: float | None, rules: FlagRules | None = None) -> list[dict]:
    """``[{"code", "message"}]`` for one annotator's figures (keys as on ``AnnotatorQuality``, plus
    ``consensus_shared``, ``choices``, ``left_n``, ``longer_n`` and ``timed``)."""
    rules = rules or FlagRules()
    flags = []
    agreement, shared = figures.get("agreement_with_consensus"), figures.get("consensus_shared", 0)
    if agreement is not None and shared >= rules.min_choices and agreement < rules.consensus_below:
        flags.append(
            {
                "code": "disagrees_with_consensus",
                "message": f"agrees with the consensus on {agreement:.0%} of {shared} comparisons others judged too",
            }
        )
    gold_n = figures.get("gold_judged", 0)
    if gold_n >= rules.min_gold:
        high = wilson_interval(figures["gold_correct"], gold_n)[1]
        if high < rules.gold_below:
            flags.append(
                {
                    "code": "fails_gold",
                    "message": f"gold accuracy {figures['gold_correct'] / gold_n:.0%} of {gold_n} "
                    f"(at most {high:.0%} at 95 % confidence)",
                }
            )
    median = figures.get("median_time_ms")
    if median is not None and figures.get("timed", 0) >= rules.min_choices:
        floor = rules.too_fast_ms
        if project_median_ms:
            floor = max(floor, rules.too_fast_share * project_median_ms)
        if median < floor:
            message = f"median {median / 1000:.1f} s per judgment (under {floor / 1000:.1f} s)"
            flags.append({"code": "too_fast", "message": message})
    for key, code, side in (("left_share", "always_left", "left"), ("longer_share", "always_longer", "longer")):
        share, n = figures.get(key), figures.get(f"{side}_n", 0)
        if share is None or n < rules.min_choices:
            continue
        low, high = wilson_interval(share * n, n)
        if low > rules.one_sided or high < 1 - rules.one_sided:
            which = side if share > 0.5 else ("right" if side == "left" else "shorter")
            message = f"picks the {which} answer {max(share, 1 - share):.0%} of {n} times"
            flags.append({"code": code, "message": message})
    checks = figures.get("position_checks", 0)
    if checks >= rules.min_position_checks:
        same = figures.get("position_consistent", 0)
        high = wilson_interval(same, checks)[1]
        if high < rules.consistency_below:
            message = (
                f"gives the same answer with the candidates swapped on {same / checks:.0%} of {checks} position "
                f"checks (at most {high:.0%} at 95 % confidence)"
            )
            flags.append({"code": "inconsistent", "message": message})
    return flags
