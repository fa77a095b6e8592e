"""Bradley–Terry loss: hand-computed values, TRL's own loss on the same inputs, and symmetry."""

import math

import pytest

pytest.importorskip("torch")

import torch

from training.ml.losses import LOSSES, bradley_terry_loss, get_loss

CHOSEN = torch.tensor([2.0, 0.5, -1.0])
REJECTED = torch.tensor([1.0, 1.5, -3.0])
MARGIN = torch.tensor([0.5, 0.0, 1.0])


def nll(z):
    return -math.log(1 / (1 + math.exp(-z)))


def test_plain_loss_matches_hand_computation():
    loss, metrics = bradley_terry_loss(CHOSEN, REJECTED)
    # gaps: 1.0, -1.0, 2.0
    expected = (nll(1.0) + nll(-1.0) + nll(2.0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["reward_margin"] == pytest.approx((1.0 - 1.0 + 2.0) / 3)


def test_margin_is_subtracted_from_the_reward_gap():
    loss, _ = bradley_terry_loss(CHOSEN, REJECTED, margin=MARGIN)
    expected = (nll(1.0 - 0.5) + nll(-1.0) + nll(2.0 - 1.0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_a_tie_is_cross_entropy_against_one_half_and_minimal_at_equal_rewards():
    loss, metrics = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), soft_label=torch.tensor([0.5]))
    assert loss.item() == pytest.approx(0.5 * nll(1.0) + 0.5 * nll(-1.0), rel=1e-6)
    at_zero, _ = bradley_terry_loss(torch.tensor([0.3]), torch.tensor([0.3]), soft_label=torch.tensor([0.5]))
    assert at_zero.item() == pytest.approx(math.log(2), rel=1e-6) and at_zero < loss
    assert math.isnan(metrics["accuracy"])  # a tie has no right order


def test_hard_soft_label_equals_the_plain_loss():
    plain, _ = bradley_terry_loss(CHOSEN, REJECTED, margin=MARGIN)
    soft, _ = bradley_terry_loss(CHOSEN, REJECTED, margin=MARGIN, soft_label=torch.ones(3))
    assert soft.item() == pytest.approx(plain.item(), rel=1e-6)


def test_weights_give_a_weighted_mean():
    loss, _ = bradley_terry_loss(CHOSEN, REJECTED, weight=torch.tensor([2.0, 0.0, 1.0]))
    assert loss.item() == pytest.approx((2 * nll(1.0) + nll(2.0)) / 3, rel=1e-6)


def test_swapping_chosen_and_rejected_flips_the_gap_and_the_accuracy():
    _, forward = bradley_terry_loss(CHOSEN, REJECTED)
    _, swapped = bradley_terry_loss(REJECTED, CHOSEN)
    assert swapped["reward_margin"] == pytest.approx(-forward["reward_margin"])
    assert swapped["accuracy"] == pytest.approx(1 - forward["accuracy"])
    # σ(−z) = 1 − σ(z): the swapped loss is the loss of the opposite label.
    opposite, _ = bradley_terry_loss(CHOSEN, REJECTED, soft_label=torch.zeros(3))
    assert bradley_terry_loss(REJECTED, CHOSEN)[0].item() == pytest.approx(opposite.item(), rel=1e-6)


def test_gradient_pushes_chosen_up_and_rejected_down():
    chosen, rejected = CHOSEN.clone().requires_grad_(), REJECTED.clone().requires_grad_()
    loss, _ = bradley_terry_loss(chosen, rejected, margin=MARGIN)
    loss.backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()
    assert torch.allclose(chosen.grad, -rejected.grad)


def test_matches_trl_reward_trainer_loss_on_the_same_inputs(tiny_backbone, tmp_path):
    """TRL keeps its loss inside RewardTrainer.compute_loss: feed it fixed rewards through a stand-in model."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    trainer = RewardTrainer(
        model=AutoModelForSequenceClassification.from_pretrained(tiny_backbone, num_labels=1),
        args=RewardConfig(output_dir=str(tmp_path), report_to="none", bf16=False, max_length=None),
        train_dataset=Dataset.from_dict({"chosen_ids": [[5, 6]], "rejected_ids": [[5]]}),
        processing_class=tokenizer,
    )

    class FixedRewards(torch.nn.Module):
        def forward(self, **inputs):
            return type("Out", (), {"logits": torch.cat([CHOSEN, REJECTED]).unsqueeze(-1)})()  # (2B, 1)

    inputs = {"input_ids": torch.ones(6, 2, dtype=torch.long), "attention_mask": torch.ones(6, 2, dtype=torch.long)}
    for margin in (None, MARGIN):
        batch = dict(inputs) if margin is None else dict(inputs, margin=margin)
        trl_loss = trainer.compute_loss(FixedRewards(), batch)
        ours, _ = bradley_terry_loss(CHOSEN, REJECTED, margin=margin)
        assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6)


def test_registry_maps_config_values_to_functions():
    assert get_loss("bradley_terry") is bradley_terry_loss is LOSSES["bradley_terry"]
    with pytest.raises(ValueError, match="bradley_terry"):
        get_loss("hinge")


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(2))
