"""Preference losses: one pure function each, returning ``(loss, metrics)``.

Batch convention (used by every loss here and by the reward trainer): rewards come as two aligned 1-D tensors,
``chosen_rewards[i]`` and ``rejected_rewards[i]`` being the scalar rewards of pair i's chosen and rejected
candidates, shape (B,). Per-pair extras (margin, soft label, weight) are (B,) too. Metrics are plain floats.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    *,
    margin: torch.Tensor | None = None,
    soft_label: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Bradley–Terry negative log-likelihood with an optional margin, soft labels and pair weights.

    With z_i = r_c,i − r_r,i − m_i (margin m_i ≥ 0, 0 if none) and label y_i (1 if chosen won, 0.5 for a tie):

        ℓ_i = −[ y_i · log σ(z_i) + (1 − y_i) · log σ(−z_i) ]          (binary cross-entropy on logit z_i)
        L   = Σ_i w_i ℓ_i / Σ_i w_i

    For y = 1 this is −log σ(r_c − r_r − m), the reward-model loss of InstructGPT (Ouyang et al. 2022, eq. 1) with
    Llama 2's margin (Touvron et al. 2023, eq. 2) — exactly what TRL's ``RewardTrainer.compute_loss`` computes.
    For a tie, y = 0.5 makes the loss minimal at z = 0: the two rewards are pulled together.

    Args:
        chosen_rewards: (B,) rewards of the chosen candidates.
        rejected_rewards: (B,) rewards of the rejected candidates.
        margin: (B,) required reward gap m_i, or None for 0.
        soft_label: (B,) probability that chosen beats rejected, or None for all 1.
        weight: (B,) non-negative pair weights, or None for all 1.

    Returns:
        loss: scalar tensor (differentiable).
        metrics: ``accuracy`` (share of labelled, non-tie pairs whose reward order matches the label; NaN if there
        is none), ``reward_margin`` (mean r_c − r_r, without m) and ``loss``.
    """
    if chosen_rewards.shape != rejected_rewards.shape or chosen_rewards.dim() != 1:
        raise ValueError(f"expected two (B,) tensors, got {tuple(chosen_rewards.shape)} and {rejected_rewards.shape}")
    delta = chosen_rewards - rejected_rewards  # (B,)
    logits = delta if margin is None else delta - margin.to(delta)  # (B,)
    if soft_label is None:
        per_pair = -F.logsigmoid(logits)  # (B,)
    else:
        # BCE-with-logits is the numerically stable form of −[y log σ(z) + (1−y) log σ(−z)].
        per_pair = F.binary_cross_entropy_with_logits(logits, soft_label.to(logits), reduction="none")  # (B,)
    if weight is None:
        loss = per_pair.mean()
    else:
        weight = weight.to(per_pair)
        loss = (weight * per_pair).sum() / weight.sum().clamp_min(1e-12)  # clamp: an all-zero batch gives 0, not NaN

    with torch.no_grad():
        label = torch.ones_like(delta) if soft_label is None else soft_label.to(delta)
        decided = label != 0.5  # (B,) ties have no right order
        correct = (delta > 0) == (label > 0.5)  # (B,)
        accuracy = correct[decided].float().mean().item() if bool(decided.any()) else float("nan")
        metrics = {"loss": loss.item(), "accuracy": accuracy, "reward_margin": delta.mean().item()}
    return loss, metrics


LOSSES: dict[str, LossFn] = {
    "bradley_terry": bradley_terry_loss,
}
"""Config value (``RewardTrainingConfig.loss``) → loss function with the signature above."""


def get_loss(name: str) -> LossFn:
    """The loss registered under ``name``; the error lists the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
