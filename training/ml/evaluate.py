"""Held-out evaluation of a reward model, as a plain dict of floats to store on its version.

:func:`reward_metrics` is pure (pairs + member rewards in, metrics out) so it is tested without a model;
:func:`evaluate_reward_model` scores the pairs first. :func:`compare_metrics` diffs two versions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from preference.stats import wilson_interval

from .pairs import PreferencePair

AGREEMENT_LEVELS = ("single", "unanimous", "majority", "contested")
"""``single``: one judgment on the candidate pair; ``unanimous``: all agree (1.0); ``majority``: more than half;
``contested``: half or less agree with the pair's direction."""


def agreement_level(agreement: float | None) -> str:
    """The bucket of a pair's agreement share (see :data:`AGREEMENT_LEVELS`)."""
    if agreement is None:
        return "single"
    if agreement >= 1.0 - 1e-9:
        return "unanimous"
    return "majority" if agreement > 0.5 else "contested"


def expected_calibration_error(prob: torch.Tensor, n_bins: int = 10) -> float:
    """ECE of σ(r_c − r_r) on pairs whose true winner is the chosen one (Guo et al. 2017, eq. 3).

    Every pair's label is "chosen wins", so the reliability of p itself would only reward saying 1. As for a
    two-class classifier we score the predicted side: confidence = max(p, 1 − p) in [0.5, 1], correct = p > 0.5,
    equal-width bins on the confidence, ECE = Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|.

    Args:
        prob: (B,) predicted probability that chosen beats rejected.
    """
    if prob.numel() == 0:
        return float("nan")
    confidence = torch.maximum(prob, 1 - prob)  # (B,)
    correct = (prob > 0.5).float()  # (B,)
    # Map [0.5, 1] onto bins 0..n_bins-1; the clamp puts confidence == 1.0 in the last bin.
    bins = ((confidence - 0.5) * 2 * n_bins).long().clamp(0, n_bins - 1)  # (B,)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = (correct[in_bin].mean() - confidence[in_bin].mean()).abs().item()
            ece += in_bin.float().mean().item() * gap
    return ece


BASELINE_RULES = {"length": ("longer", "shorter"), "position": ("first shown", "second shown")}
"""The trivial rules every evaluation reports beside the model: each picks a candidate without reading it."""


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    if x.numel() < 2:
        return float("nan")
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.norm() * y.norm()).item()
    return (x @ y).item() / denom if denom > 0 else float("nan")


def reward_metrics(
    pairs: Sequence[PreferencePair],
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    n_bins: int = 10,
    baselines: Sequence[str] = tuple(BASELINE_RULES),
) -> dict:
    """Metrics of member rewards on held-out pairs.

    Args:
        pairs: the B held-out pairs (ties, label 0.5, count only for length bias and disagreement).
        chosen: (M, B) or (B,) rewards of the chosen candidates, per ensemble member.
        rejected: same shape, for the rejected candidates.
        baselines: which of :data:`BASELINE_RULES` to report (a media path's length says nothing).

    Returns a JSON-ready dict: ``n_pairs``, ``n_decided``; ``accuracy`` (ensemble-mean reward orders the pair as
    labelled) and ``member_accuracy`` (mean over members); ``accuracy_by_agreement`` {level: {"n", "accuracy"}};
    ``accuracy_ci`` (95 % Wilson interval of ``accuracy``); ``baselines`` and ``beats_baselines`` (the model is
    above every trivial rule on the same pairs, :func:`baseline_metrics`); ``ece``; ``mean_reward_gap``; length
    bias: ``reward_length_corr`` (Pearson over every scored candidate, length in characters), ``prefers_longer_rate``
    (model picks the longer candidate) vs ``data_longer_chosen_rate`` (the labels pick it);
    ensemble: ``members``, ``disagreement`` (mean std of σ(r_c − r_r) over members) and ``delta_std`` (mean std of
    r_c − r_r). Undefined values are None.
    """
    if chosen.dim() == 1:
        chosen, rejected = chosen.unsqueeze(0), rejected.unsqueeze(0)  # (1, B)
    if chosen.shape != rejected.shape or chosen.shape[1] != len(pairs):
        raise ValueError(f"rewards {tuple(chosen.shape)} / {tuple(rejected.shape)} do not match {len(pairs)} pairs")
    members = chosen.shape[0]
    delta = (chosen - rejected).float()  # (M, B)
    mean_delta = delta.mean(0)  # (B,)
    label = torch.tensor([p.label for p in pairs], dtype=torch.float)  # (B,)
    decided = label != 0.5  # (B,)
    correct = (mean_delta > 0) == (label > 0.5)  # (B,)

    by_agreement = {}
    for level in AGREEMENT_LEVELS:
        mask = decided & torch.tensor([agreement_level(p.agreement) == level for p in pairs], dtype=torch.bool)
        if mask.any():
            by_agreement[level] = {"n": int(mask.sum()), "accuracy": correct[mask].float().mean().item()}

    # Length bias. Δlength > 0 means chosen is longer; pairs of equal length say nothing about it.
    chosen_len = torch.tensor([len(p.chosen) for p in pairs], dtype=torch.float)  # (B,)
    rejected_len = torch.tensor([len(p.rejected) for p in pairs], dtype=torch.float)  # (B,)
    unequal = decided & (chosen_len != rejected_len)
    chosen_longer = chosen_len > rejected_len
    model_picks_chosen = mean_delta > 0
    candidate_len = torch.cat([chosen_len, rejected_len])  # (2B,)
    candidate_reward = torch.cat([chosen.mean(0), rejected.mean(0)]).float()  # (2B,)

    # Ensemble disagreement (0 for one member: nothing to disagree with).
    if members > 1:
        disagreement = torch.sigmoid(delta).std(0).mean().item()
        delta_std = delta.std(0).mean().item()
    else:
        disagreement = delta_std = 0.0

    def mean_or_none(x: torch.Tensor) -> float | None:
        return x.float().mean().item() if x.numel() else None

    baseline_scores = baseline_metrics(pairs, correct.tolist(), rules=baselines)
    beaten = [b["model_accuracy"] > b["accuracy"] for b in baseline_scores.values() if b is not None]
    n_decided = int(decided.sum())
    metrics = {
        "n_pairs": len(pairs),
        "n_decided": n_decided,
        "accuracy": mean_or_none(correct[decided]),
        "accuracy_ci": list(wilson_interval(correct[decided].sum().item(), n_decided)) if n_decided else None,
        "baselines": baseline_scores,
        "beats_baselines": all(beaten) if beaten else None,
        "member_accuracy": mean_or_none(((delta > 0) == (label > 0.5))[:, decided]),
        "accuracy_by_agreement": by_agreement,
        "ece": expected_calibration_error(torch.sigmoid(mean_delta[decided]), n_bins=n_bins) if decided.any() else None,
        "mean_reward_gap": mean_or_none(mean_delta[decided]),
        "reward_length_corr": _pearson(candidate_reward, candidate_len),
        "prefers_longer_rate": mean_or_none((model_picks_chosen == chosen_longer)[unequal]),
        "data_longer_chosen_rate": mean_or_none(chosen_longer[unequal]),
        "members": members,
        "disagreement": disagreement,
        "delta_std": delta_std,
    }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def baseline_metrics(
    pairs: Sequence[PreferencePair], model_correct: Sequence[bool], *, rules: Sequence[str] = tuple(BASELINE_RULES)
) -> dict:
    """What a rule that never reads the text scores on the same held-out pairs, beside the model.

    ``length``: prefer the longer (or the shorter) candidate, in characters; a pair of equal length counts half.
    ``position``: prefer the candidate the annotator saw first (or second), on the pairs whose shown order was
    recorded; None when none was. Each rule takes the better of its two directions *on these pairs*, so it is an
    upper bound of what that cue alone says here — a model that does not beat it has not shown it reads more.

    Returns ``{name: {"rule", "accuracy", "ci", "n", "model_accuracy"} | None}``, where ``model_accuracy`` is the
    model's on the same ``n`` pairs (``model_correct``: per pair, whether the model ordered it as labelled).
    Ties (label 0.5) are left out, as in the model's accuracy.
    """
    decided = [i for i, p in enumerate(pairs) if p.label != 0.5]
    cues = {
        "length": {i: _sign(len(pairs[i].chosen) - len(pairs[i].rejected)) for i in decided},
        "position": {
            i: 1.0 if pairs[i].chosen_shown_first else -1.0 for i in decided if pairs[i].chosen_shown_first is not None
        },
    }
    out: dict[str, dict | None] = {}
    for name in rules:
        cue = cues[name]
        if not cue:
            out[name] = None
            continue
        n = len(cue)
        # Rule "first direction" is right when the cue is +1, wrong at -1, a coin flip at 0.
        wins = sum(1.0 if c > 0 else 0.5 if c == 0 else 0.0 for c in cue.values())
        rule, wins = (BASELINE_RULES[name][0], wins) if wins * 2 >= n else (BASELINE_RULES[name][1], n - wins)
        out[name] = {
            "rule": rule,
            "accuracy": wins / n,
            "ci": list(wilson_interval(wins, n)),
            "n": n,
            "model_accuracy": sum(bool(model_correct[i]) for i in cue) / n,
        }
    return out


def _sign(x: int) -> float:
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0


def evaluate_reward_model(model, pairs: Sequence[PreferencePair], *, batch_size: int = 32, n_bins: int = 10) -> dict:
    """Score ``pairs`` with a :class:`~training.ml.reward.RewardModel` and return :func:`reward_metrics`."""
    chosen, rejected = model.score_pairs(pairs, batch_size=batch_size)  # (M, B) each
    return reward_metrics(pairs, chosen, rejected, n_bins=n_bins)


LOWER_IS_BETTER = frozenset({"ece", "disagreement", "delta_std"})
"""Metrics where a decrease is an improvement (for ``compare_metrics``' ``improved`` flag)."""


def compare_metrics(current: dict, previous: dict | None) -> dict:
    """Per numeric metric present in both: ``{"current", "previous", "delta", "improved"}``.

    ``improved`` is None for metrics without a better direction (counts, length correlation — its sign depends on
    the data). Nested dicts (accuracy by agreement) are compared level by level as ``"accuracy_by_agreement.<level>"``.
    """
    if not previous:
        return {}
    flat_now, flat_before = _flatten(current), _flatten(previous)
    higher_is_better = {"accuracy", "member_accuracy", "f1"}  # f1: span models
    out = {}
    for key in sorted(flat_now.keys() & flat_before.keys()):
        now, before = flat_now[key], flat_before[key]
        if now is None or before is None:
            continue
        name = key.rsplit(".", 1)[-1]
        delta = now - before
        if name in higher_is_better:
            improved = delta > 0
        elif name in LOWER_IS_BETTER:
            improved = delta < 0
        else:
            improved = None
        out[key] = {"current": now, "previous": before, "delta": delta, "improved": improved}
    return out


def _flatten(metrics: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
        elif value is None:
            flat[f"{prefix}{key}"] = None
    return flat
