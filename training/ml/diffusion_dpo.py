"""Diffusion-DPO (Wallace et al. 2023, "Diffusion Model Alignment Using Direct Preference Optimization",
arXiv:2311.12908): preference pairs of images → a LoRA on the generator's UNet, saved as a new generator folder.

Read top to bottom: the loss (one function, eq. 14) → config → pairs → training loop → saving.

Batch convention (one, used everywhere here): a step takes B pairs; chosen and rejected images are concatenated
along the batch, chosen first — ``x = cat([x_chosen, x_rejected])`` (2B, C, H, W) — and share their timestep and
their noise (pair i's chosen and rejected get the same t_i and ε_i, as in eq. 14, where both terms are taken at the
same t, and in the reference implementations). The reference ε_ref is the same UNet with the LoRA adapter disabled:
the frozen starting model, no second copy in memory.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .generation.diffusion import CLASS_CONDITIONAL, MANIFEST, generator_kind, png_to_tensor
from .reward import atomic_directory

DPO_MANIFEST = "tandem_diffusion_dpo.json"
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)``, called after every optimiser step."""


# --- the loss -----------------------------------------------------------------------------------------------------


def diffusion_dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    target_chosen: torch.Tensor,
    target_rejected: torch.Tensor,
    *,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Diffusion-DPO, Wallace et al. 2023, eq. 14, per timestep:

        L = −log σ(−β T ω(λ_t) [ (‖ε^w − ε_θ(x^w_t, t)‖² − ‖ε^w − ε_ref(x^w_t, t)‖²)
                                − (‖ε^l − ε_θ(x^l_t, t)‖² − ‖ε^l − ε_ref(x^l_t, t)‖²) ])

    in its practical form: T·ω(λ_t) is a constant folded into ``beta`` and ‖·‖² is the mean over a sample's
    elements (a sum would multiply β by C·H·W). All inputs are (B, C, H, W): predictions of the trained UNet (ε_θ),
    of the reference (ε_ref), and the regression targets (the noise ε for ε-prediction; chosen = w, rejected = l).

    The scale of β: the sigmoid's argument is β times a difference of per-element mean squared errors, so the loss
    saturates once θ has moved the chosen-minus-rejected error, relative to the reference, by a few units of 1/β
    (at β = 1000, by ≈ 0.005 of an error that is ≈ 0.1 for the 16×16 digits UNet). Larger β: the loss saturates
    after a smaller move, which keeps θ closer to the reference. The authors' code (and diffusers'
    ``train_diffusion_dpo.py``) multiplies by ``-0.5 * beta_dpo``, so their β_dpo = 2 × this ``beta``: the
    paper's 5000 for Stable Diffusion latents is 2500 here.

    Returns the mean loss and metrics: ``accuracy`` (share of pairs whose implicit reward prefers chosen, ties
    count half), ``reward_margin`` (mean of β·[(ref − θ error on chosen) − (ref − θ error on rejected)], the
    sigmoid's argument), ``policy_mse`` / ``reference_mse`` (plain denoising losses, to watch the model drift).
    """
    error_policy_w = (policy_chosen - target_chosen).pow(2).flatten(1).mean(1)  # (B,)
    error_policy_l = (policy_rejected - target_rejected).pow(2).flatten(1).mean(1)  # (B,)
    error_ref_w = (reference_chosen - target_chosen).pow(2).flatten(1).mean(1)  # (B,)
    error_ref_l = (reference_rejected - target_rejected).pow(2).flatten(1).mean(1)  # (B,)
    # −β · [(θ − ref on chosen) − (θ − ref on rejected)]: positive when θ denoises chosen better than ref does,
    # relative to rejected.
    margin = -beta * ((error_policy_w - error_ref_w) - (error_policy_l - error_ref_l))  # (B,)
    loss = -F.logsigmoid(margin).mean()
    with torch.no_grad():
        metrics = {
            "accuracy": ((margin > 0).float() + 0.5 * (margin == 0).float()).mean().item(),
            "reward_margin": margin.mean().item(),
            "policy_mse": 0.5 * (error_policy_w.mean() + error_policy_l.mean()).item(),
            "reference_mse": 0.5 * (error_ref_w.mean() + error_ref_l.mean()).item(),
        }
    return loss, metrics


# --- config and pairs ---------------------------------------------------------------------------------------------


@dataclass
class DiffusionDPOConfig:
    """Diffusion-DPO hyperparameters; saved beside the checkpoint in ``tandem_diffusion_dpo.json``."""

    beta: float = 2000.0
    """β·T·ω(λ_t) of eq. 14 as one constant, on per-element mean squared errors (see :func:`diffusion_dpo_loss`).
    The authors' code scales by ½·β_dpo, so its 2000–5000 for Stable Diffusion latents are 1000–2500 here; larger
    keeps the model closer to the reference."""
    learning_rate: float = 1e-4
    """AdamW learning rate of the LoRA parameters (constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay on the LoRA parameters."""
    num_epochs: int = 1
    """Passes over the pairs (ignored when ``max_steps`` is set)."""
    max_steps: int | None = None
    """Optimiser steps; overrides ``num_epochs``."""
    batch_size: int = 8
    """Pairs per step (the UNet sees 2 × this: chosen and rejected)."""
    max_grad_norm: float = 1.0
    """Gradient clipping of the LoRA parameters."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 8
    """LoRA scale numerator: the update is (alpha / r) · B A."""
    lora_target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")
    """Module names (suffixes) that get a LoRA: the attention projections (diffusers' DPO example) and the ResNet
    blocks' 3×3 convolutions, which hold most of a small pixel-space UNet's weights."""
    seed: int = 0
    """LoRA initialisation, pair order, timesteps and noise."""

    def __post_init__(self):
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.lora_target_modules = tuple(self.lora_target_modules)


class ImagePair(NamedTuple):
    """One preference: the prompt and two PNG images generated for it, chosen first. A plain 3-tuple works too."""

    prompt: str
    chosen_png: bytes
    rejected_png: bytes


@dataclass
class DiffusionDPOModel:
    """A trained run in memory: the UNet with its LoRA attached (unmerged, so disabling it gives the reference)."""

    unet: torch.nn.Module
    generator_path: Path
    config: DiffusionDPOConfig
    metrics: dict = field(default_factory=dict)


# --- conditioning: what each generator kind feeds its UNet --------------------------------------------------------


class _ClassConditional:
    """Pixel space: x0 = the image in [-1, 1]; the condition is the prompt's class label."""

    def __init__(self, path: Path):
        from diffusers import DDPMScheduler, UNet2DModel

        self.unet = UNet2DModel.from_pretrained(path / "unet")
        self.scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
        self.prompts = json.loads((path / MANIFEST).read_text())["prompts"]

    def encode(self, prompts: Sequence[str], pngs: Sequence[bytes]) -> tuple[torch.Tensor, dict]:
        unknown = [p for p in prompts if p not in self.prompts]
        if unknown:
            raise ValueError(f"unknown prompt {unknown[0]!r}; this generator knows {sorted(self.prompts)}")
        channels, size = self.unet.config.in_channels, self.unet.config.sample_size
        x0 = torch.stack([png_to_tensor(png, channels=channels, size=size) for png in pngs])  # (B, C, S, S)
        return x0, {"class_labels": torch.tensor([self.prompts[p] for p in prompts])}


class _TextToImage:
    """Latent space (Stable Diffusion): x0 = the VAE latent's mean × scaling factor; the condition is the frozen
    text encoder's last hidden state, as the pipeline computes it without guidance."""

    def __init__(self, path: Path):
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        self.unet = UNet2DConditionModel.from_pretrained(path / "unet")
        self.scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
        self.vae = AutoencoderKL.from_pretrained(path / "vae").eval().requires_grad_(False)
        self.text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder").eval().requires_grad_(False)
        self.tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], pngs: Sequence[bytes]) -> tuple[torch.Tensor, dict]:
        size = self.unet.config.sample_size * 2 ** (len(self.vae.config.block_out_channels) - 1)
        pixels = torch.stack([png_to_tensor(png, channels=3, size=size) for png in pngs])  # (B, 3, H, W)
        latents = self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor  # (B, 4, h, w)
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True
        )["input_ids"]
        hidden = self.text_encoder(torch.tensor(ids))[0]  # (B, L, D)
        return latents, {"encoder_hidden_states": hidden}


def _backend(path: Path) -> _ClassConditional | _TextToImage:
    return _ClassConditional(path) if generator_kind(path) == CLASS_CONDITIONAL else _TextToImage(path)


# --- LoRA through PEFT --------------------------------------------------------------------------------------------


def _lora_config(config: DiffusionDPOConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=list(config.lora_target_modules),
        init_lora_weights="gaussian",  # A ~ N(0, 1/r), B = 0: the run starts exactly at the reference
    )


def _add_lora(unet: torch.nn.Module, config: DiffusionDPOConfig) -> None:
    """Inject a LoRA with PEFT, in place; PEFT freezes every other parameter.

    ``peft.inject_adapter_in_model`` rather than ``unet.add_adapter``: in diffusers 0.42 only
    ``UNet2DConditionModel`` has ``PeftAdapterMixin``; ``UNet2DModel`` does not. ``add_adapter`` calls the same
    function, so both generator kinds get identical LoRA layers.
    """
    from peft import inject_adapter_in_model

    inject_adapter_in_model(_lora_config(config), unet)


def _lora_layers(unet: torch.nn.Module):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for module in unet.modules() if isinstance(module, BaseTunerLayer)]


def _set_adapters(unet: torch.nn.Module, enabled: bool) -> None:
    """Switch every LoRA layer on or off (what diffusers' ``enable_adapters`` / ``disable_adapters`` do)."""
    for layer in _lora_layers(unet):
        layer.enable_adapters(enabled)


def merged_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of ``unet`` with its LoRA merged into the base weights (the original keeps its adapter)."""
    work = copy.deepcopy(unet)
    for layer in _lora_layers(work):
        layer.merge()
    state = {key.replace(".base_layer.", "."): value for key, value in work.state_dict().items() if ".lora_" not in key}
    plain = type(unet).from_config(unet.config)
    plain.load_state_dict(state)
    return plain.eval()


def load_lora_unet(generator_path: str | os.PathLike, adapter_path: str | os.PathLike) -> torch.nn.Module:
    """The starting generator's UNet with a saved ``adapter/`` attached (unmerged): the trained model, and with
    the adapter disabled the reference."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    unet = _backend(Path(generator_path)).unet
    inject_adapter_in_model(LoraConfig.from_pretrained(adapter_path), unet)
    set_peft_model_state_dict(unet, load_file(Path(adapter_path) / ADAPTER_WEIGHTS))
    return unet.eval()


# --- training -----------------------------------------------------------------------------------------------------


def train_diffusion_dpo(
    generator_path: str | os.PathLike,
    pairs: Sequence[ImagePair | tuple[str, bytes, bytes]],
    config: DiffusionDPOConfig,
    progress: ProgressFn | None = None,
) -> DiffusionDPOModel:
    """Diffusion-DPO with a LoRA on the UNet of the generator folder ``generator_path`` (either kind that
    ``generation.diffusion.load_image_generator`` loads). Each step: B pairs, one timestep and one noise per pair
    shared by chosen and rejected, ε_θ with the adapter on and ε_ref with it off, :func:`diffusion_dpo_loss`,
    AdamW on the LoRA parameters only. Save with :func:`save_diffusion_dpo`."""
    pairs = [ImagePair(*pair) for pair in pairs]
    if not pairs:
        raise ValueError("no pairs to train on")
    generator_path = Path(generator_path)
    backend = _backend(generator_path)
    unet, scheduler = backend.unet, backend.scheduler
    torch.manual_seed(config.seed)  # LoRA initialisation
    _add_lora(unet, config)
    parameters = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = -(-len(pairs) // config.batch_size)
    total = config.max_steps if config.max_steps is not None else config.num_epochs * steps_per_epoch
    num_timesteps = scheduler.config.num_train_timesteps

    history: list[dict[str, float]] = []
    started, step = time.monotonic(), 0
    unet.train()
    while step < total:
        order = torch.randperm(len(pairs), generator=rng).tolist()
        for start in range(0, len(order), config.batch_size):
            if step >= total:
                break
            batch = [pairs[i] for i in order[start : start + config.batch_size]]
            b = len(batch)
            prompts = [pair.prompt for pair in batch]
            x0, condition = backend.encode(
                prompts * 2, [pair.chosen_png for pair in batch] + [pair.rejected_png for pair in batch]
            )  # x0: (2B, C, H, W), chosen first
            noise = torch.randn((b, *x0.shape[1:]), generator=rng).repeat(2, 1, 1, 1)  # (2B, C, H, W), shared
            t = torch.randint(0, num_timesteps, (b,), generator=rng).repeat(2)  # (2B,), shared
            noisy = scheduler.add_noise(x0, noise, t)
            if scheduler.config.prediction_type == "v_prediction":
                target = scheduler.get_velocity(x0, noise, t)
            else:
                target = noise
            prediction = unet(noisy, t, **condition).sample  # (2B, C, H, W)
            with torch.no_grad():
                _set_adapters(unet, False)
                try:
                    reference = unet(noisy, t, **condition).sample
                finally:
                    _set_adapters(unet, True)
            loss, metrics = diffusion_dpo_loss(
                prediction[:b], prediction[b:], reference[:b], reference[b:], target[:b], target[b:], beta=config.beta
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            step += 1
            history.append({"loss": loss.item(), **metrics})
            if progress is not None:
                progress(step, total, loss.item())
    unet.eval()
    tail = history[-max(1, len(history) // 10) :]  # the last tenth of the steps
    summary = {
        "steps": step,
        "pairs": len(pairs),
        "seconds": round(time.monotonic() - started, 2),
        **{f"final_{key}": sum(h[key] for h in tail) / len(tail) for key in history[0]},
        "history": history,
    }
    return DiffusionDPOModel(unet=unet, generator_path=generator_path, config=config, metrics=summary)


# --- saving -------------------------------------------------------------------------------------------------------


def save_diffusion_dpo(model: DiffusionDPOModel, path: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Write a new generator folder atomically: the starting folder's files (hard links where the filesystem
    allows: VAE and text encoder are unchanged), ``unet/`` replaced by the merged weights, the LoRA under
    ``adapter/`` and ``tandem_diffusion_dpo.json``. ``load_image_generator(path)`` loads it like any generator."""
    import diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    source = model.generator_path
    with atomic_directory(path) as staging:
        for entry in source.iterdir():
            if entry.name in {"unet", ADAPTER_DIR, DPO_MANIFEST} or entry.name.startswith("."):
                continue
            if entry.is_dir():
                shutil.copytree(entry, staging / entry.name, copy_function=_link_or_copy)
            else:
                _link_or_copy(entry, staging / entry.name)
        merged_unet(model.unet).save_pretrained(staging / "unet")
        adapter = staging / ADAPTER_DIR
        _lora_config(model.config).save_pretrained(adapter)
        save_file(get_peft_model_state_dict(model.unet), adapter / ADAPTER_WEIGHTS)
        manifest = {
            "algorithm": "diffusion-dpo",
            "generator": str(source),
            "config": asdict(model.config),
            "metrics": {key: value for key, value in model.metrics.items() if key != "history"},
            "losses": [round(h["loss"], 6) for h in model.metrics.get("history", [])],
            "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__},
            "extra": extra or {},
        }
        (staging / DPO_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(path)


def _link_or_copy(src, dst) -> None:
    """Hard-link an unchanged file (artifacts are immutable, so sharing inodes is safe); copy across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
