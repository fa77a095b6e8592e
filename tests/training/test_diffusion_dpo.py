"""Diffusion-DPO: the loss against hand-computed values, and a tiny UNet that learns its training pairs."""

import math

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")

import torch

from training.ml.diffusion_dpo import (
    ADAPTER_DIR,
    DPO_MANIFEST,
    DiffusionDPOConfig,
    ImagePair,
    diffusion_dpo_loss,
    load_lora_unet,
    save_diffusion_dpo,
    train_diffusion_dpo,
)
from training.ml.generation.diffusion import load_image_generator, tensor_to_png

from .synthetic_diffusion import DIGIT_PROMPTS, build_tiny_class_conditional, build_tiny_text_to_image


def constant(value: float, shape=(2, 1, 2, 2)) -> torch.Tensor:
    return torch.full(shape, value)


def test_loss_matches_hand_computed_values():
    # Errors (mean of squares over C·H·W): policy chosen 0.25, rejected 1.0; reference chosen 0.5, rejected 0.5.
    zero = constant(0.0)
    loss, metrics = diffusion_dpo_loss(
        constant(0.5), constant(1.0), constant(0.5**0.5), constant(0.5**0.5), zero, zero, beta=2.0
    )
    # margin = −β[(0.25 − 0.5) − (1.0 − 0.5)] = −2 · (−0.75) = 1.5; loss = −log σ(1.5) = log(1 + e^−1.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.5)), rel=1e-6)
    assert metrics["reward_margin"] == pytest.approx(1.5, rel=1e-6)
    assert metrics["accuracy"] == 1.0
    assert metrics["policy_mse"] == pytest.approx(0.625)
    assert metrics["reference_mse"] == pytest.approx(0.5)


def test_loss_is_log_2_at_the_reference_and_ties_count_half():
    prediction, target = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    loss, metrics = diffusion_dpo_loss(prediction, prediction, prediction, prediction, target, target, beta=5000.0)
    assert loss.item() == pytest.approx(math.log(2))
    assert metrics == pytest.approx(
        {
            "accuracy": 0.5,
            "reward_margin": 0.0,
            "policy_mse": metrics["policy_mse"],
            "reference_mse": metrics["policy_mse"],
        }
    )


def test_swapping_chosen_and_rejected_flips_the_margin():
    torch.manual_seed(0)
    tensors = [torch.randn(4, 1, 3, 3) for _ in range(6)]
    pc, pr, rc, rr, tc, tr = tensors
    loss, metrics = diffusion_dpo_loss(pc, pr, rc, rr, tc, tr, beta=3.0)
    swapped_loss, swapped = diffusion_dpo_loss(pr, pc, rr, rc, tr, tc, beta=3.0)
    assert swapped["reward_margin"] == pytest.approx(-metrics["reward_margin"], rel=1e-5)
    assert swapped["accuracy"] == pytest.approx(1 - metrics["accuracy"])
    # −log σ(m) − (−log σ(−m)) = −m for each pair: the two losses differ by the mean margin.
    assert loss.item() - swapped_loss.item() == pytest.approx(-metrics["reward_margin"], rel=1e-4)


def test_beta_is_half_the_reference_codes_beta_dpo():
    # The authors' train.py (and diffusers' train_diffusion_dpo.py): inside = -0.5 * beta_dpo * (model_diff -
    # ref_diff) on per-element mean squared errors; our docstring says our beta = beta_dpo / 2.
    torch.manual_seed(0)
    pc, pr, rc, rr, tc, tr = (torch.randn(4, 1, 3, 3) for _ in range(6))
    beta_dpo = 5000.0

    def mse(a, b):
        return (a - b).pow(2).mean(dim=[1, 2, 3])

    inside = -0.5 * beta_dpo * ((mse(pc, tc) - mse(pr, tr)) - (mse(rc, tc) - mse(rr, tr)))
    reference_loss = -torch.nn.functional.logsigmoid(inside).mean()
    loss, _ = diffusion_dpo_loss(pc, pr, rc, rr, tc, tr, beta=beta_dpo / 2)
    assert loss.item() == pytest.approx(reference_loss.item(), rel=1e-5)


def test_loss_gradient_flows_to_the_policy_only():
    policy = torch.randn(2, 1, 2, 2, requires_grad=True)
    reference = torch.randn(2, 1, 2, 2, requires_grad=True)
    target = torch.randn(2, 1, 2, 2)
    loss, _ = diffusion_dpo_loss(
        policy, policy.flip(0), reference.detach(), reference.detach().flip(0), target, target, beta=1.0
    )
    loss.backward()
    assert policy.grad is not None and policy.grad.abs().sum() > 0
    assert reference.grad is None


def bright_and_dark_pairs() -> list[ImagePair]:
    """Chosen: a bright square on the left; rejected: a dark one on the right, for four digit prompts."""
    left, right = -torch.ones(1, 8, 8), -torch.ones(1, 8, 8)
    left[:, 2:6, 1:4], right[:, 2:6, 4:7] = 1.0, 1.0
    return [ImagePair(prompt, tensor_to_png(left), tensor_to_png(right)) for prompt in DIGIT_PROMPTS[:4]]


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    return build_tiny_class_conditional(tmp_path_factory.mktemp("dpo") / "start")


@pytest.fixture(scope="module")
def trained(tiny_generator):
    config = DiffusionDPOConfig(beta=50.0, learning_rate=1e-2, batch_size=4, max_steps=25, lora_r=4, lora_alpha=4)
    reports = []
    model = train_diffusion_dpo(tiny_generator, bright_and_dark_pairs(), config, progress=lambda *r: reports.append(r))
    return model, reports


@pytest.mark.slow
def test_dpo_steps_raise_the_implicit_margin_on_the_training_pairs(trained):
    model, reports = trained
    history = model.metrics["history"]
    assert [r[:2] for r in reports] == [(s, 25) for s in range(1, 26)]
    assert history[0]["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # LoRA B = 0: the first step is the reference
    first, last = history[:5], history[-5:]
    assert sum(h["reward_margin"] for h in last) / 5 > sum(h["reward_margin"] for h in first) / 5 + 0.1
    assert sum(h["accuracy"] for h in last) / 5 > 0.75
    assert sum(h["loss"] for h in last) / 5 < math.log(2)


@pytest.mark.slow
def test_dpo_changes_only_the_lora_parameters(trained, tiny_generator):
    from diffusers import UNet2DModel

    model, _ = trained
    start = UNet2DModel.from_pretrained(tiny_generator / "unet").state_dict()
    state = model.unet.state_dict()
    base = {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}
    assert base.keys() == start.keys()
    assert all(torch.equal(base[k], start[k]) for k in start)
    lora_b = [v for k, v in state.items() if ".lora_B." in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # initialised at 0, trained away from it


@pytest.mark.slow
def test_saved_run_is_a_generator_with_merged_weights_and_its_adapter(trained, tiny_generator, tmp_path):
    model, _ = trained
    path = save_diffusion_dpo(model, tmp_path / "after", extra={"round": 3})
    assert (path / ADAPTER_DIR / "adapter_config.json").is_file() and (path / DPO_MANIFEST).is_file()
    after = load_image_generator(path)
    before = load_image_generator(tiny_generator)
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([10, 60]), torch.tensor([0, 3])
    with torch.no_grad():
        merged = after.unet(x, t, class_labels=labels).sample
        attached = model.unet(x, t, class_labels=labels).sample
        reloaded = load_lora_unet(tiny_generator, path / ADAPTER_DIR)(x, t, class_labels=labels).sample
        original = before.unet(x, t, class_labels=labels).sample
    torch.testing.assert_close(merged, attached, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(reloaded, attached, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(merged, original, atol=1e-4)
    images = after.generate(DIGIT_PROMPTS[:2], k=1, num_inference_steps=4)
    assert len(images) == 2 and images[0][0].png
    with pytest.raises(FileExistsError):
        save_diffusion_dpo(model, path)


@pytest.mark.slow
def test_dpo_trains_a_text_to_image_pipeline(tmp_path):
    path = build_tiny_text_to_image(tmp_path / "pipe", words="a red cat blue dog".split())
    generator = load_image_generator(path)
    rows = generator.generate(["a red cat", "a blue dog"], k=2, num_inference_steps=2)
    pairs = [("a red cat", rows[0][0].png, rows[0][1].png), ("a blue dog", rows[1][1].png, rows[1][0].png)]
    config = DiffusionDPOConfig(beta=100.0, learning_rate=1e-2, batch_size=2, max_steps=3, lora_r=2, lora_alpha=2)
    model = train_diffusion_dpo(path, pairs, config)
    saved = save_diffusion_dpo(model, tmp_path / "after")
    again = load_image_generator(saved).generate(["a red cat"], k=1, num_inference_steps=2)
    assert again[0][0].width == 16
    assert (saved / "vae").is_dir() and (saved / "text_encoder").is_dir()


def test_an_unknown_prompt_is_a_clear_error(tiny_generator):
    pair = bright_and_dark_pairs()[0]
    with pytest.raises(ValueError, match="'a handwritten zebra'"):
        train_diffusion_dpo(
            tiny_generator,
            [("a handwritten zebra", pair.chosen_png, pair.rejected_png)],
            DiffusionDPOConfig(max_steps=1),
        )
