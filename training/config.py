"""The settings of one training round (the reward model; for policy rounds the whole loop), as one dataclass
(STYLE: one config per entry point).

Where a value comes from, later winning:

1. the defaults below;
2. Django settings: ``TRAINING_REWARD_BACKBONE`` (the deployment's default backbone, id or local path);
3. the project's ``training_settings`` JSON (flat keys, the field names below);
4. the overrides of the call that starts the round (API body ``{"config": {...}}``, command-line flags).

The merged result is validated (unknown keys and bad values are errors that name the key) and stored on the
``Round`` as its config snapshot; the run reads only the snapshot, so a redelivered or resumed round trains with
exactly the settings it was started with, whatever the project says by then.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings

from .backbone_policy import backbone_check


class ConfigInvalid(ValueError):
    """Bad training settings; ``errors`` maps a field name → messages (the API's error shape)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class RoundConfig:
    """What decides a training round. Every field may be set per project or per round."""

    backbone: str | None = None
    """``builtin:minilm`` / ``builtin:smollm2``, a Hugging Face model id (local cache only) or an absolute folder
    under ``settings.TRAINING_BACKBONE_ROOTS`` (see ``training.backbone_policy``). No default that downloads: a
    round refuses to start until the project or ``settings.TRAINING_REWARD_BACKBONE`` names one."""
    epochs: float = 2.0
    """Passes over the train pairs, per ensemble member."""
    max_steps: int = -1
    """If > 0, stop after this many optimiser steps per member (overrides ``epochs``)."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate of the reward model, reached at the end of its warm-up (``warmup_ratio``)."""
    warmup_ratio: float = 0.1
    """Share of the reward model's steps spent warming the learning rate up linearly (then linear decay to 0)."""
    batch_size: int = 16
    """Pairs per micro-batch (each pair is two sequences)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimiser step."""
    max_length: int = 256
    """Tokens per (prompt + response); longer ones are cut from the left so the answer's end is kept."""
    ensemble_size: int = 1
    """Independently trained members; > 1 gives a disagreement (uncertainty) per pair."""
    lora_r: int | None = None
    """LoRA rank (PEFT) instead of a full fine-tune; merged into the weights before saving."""
    bf16: bool = False
    """bfloat16 mixed precision (GPUs that support it; slow on CPU)."""
    tie_policy: str = "drop"
    """``drop`` ties, or keep them as ``soft`` pairs with label 0.5."""
    use_strength_margin: bool = True
    """Preference strength becomes the Bradley–Terry margin."""
    annotator_weighting: str = "reliability"
    """``reliability``: each annotator's pairs weigh their reliability weight from the label-quality model
    (annotation.quality; 1.0 until it has been computed); ``uniform``: every pair weighs 1. Annotators a researcher
    excluded weigh 0 either way."""
    eval_fraction: float = 0.1
    """Share of prompts held out for evaluation when no judged prompt is explicitly marked ``eval``."""
    seed: int | None = None
    """Seed of the split hash and of training; None uses the project id (stable per project)."""
    min_train_pairs: int = 1
    """Fail the round (instead of training on almost nothing) below this many train pairs."""
    auto_activate: bool = True
    """Make the new version the active one when the round succeeds."""
    require_no_regression: bool = False
    """With ``auto_activate``: keep the previous version active if the new one's held-out accuracy is lower."""
    schedule: bool = False
    """Let the scheduler (Celery beat) start rounds for this project."""
    min_new_judgments: int = 200
    """The scheduler starts a round once this many non-gold judgments arrived since the last round."""
    schedule_every_hours: float = 0.0
    """With ``schedule``: also start a round when the last one started this many hours ago (0: only by count)."""
    span_rewards: bool = True
    """When the project's schema has span categories and judgments carry span marks, also train the fine-grained
    span-reward model (``training.ml.span_rewards``) and register it as a ``span`` version."""
    span_epochs: float = 3.0
    """Passes over the marked texts for the span-reward model."""
    span_learning_rate: float = 5e-5
    """Peak AdamW learning rate of the span-reward model."""

    # --- the policy loop (rounds of kind "policy"; DESIGN §1) ---------------------------------------------------
    policy: str | None = None
    """The generator to improve: ``builtin:smollm2``, a hub id in the local cache or a folder under the allowed
    roots (like ``backbone``). Naming one makes rounds run the whole loop (generate → score → optimise → push)."""
    policy_algorithm: str = "dpo"
    """How the policy learns from the reward model: ``dpo`` (TRL's DPOTrainer on best-vs-worst-of-K pairs, plus
    human pairs) or ``rloo`` (TRL's RLOOTrainer, on-policy, with the reward model as the reward; K samples per
    prompt per step)."""
    loss_type: str = "sigmoid"
    """TRL's DPO loss variant: ``sigmoid`` (DPO), ``ipo``, ``robust`` (label-noise robust), ``hinge``."""
    beta: float = 0.1
    """β: the strength of the KL tie to the reference (higher keeps the policy closer), in DPO and RLOO."""
    label_smoothing: float = 0.0
    """Assumed share of flipped labels, for ``robust`` (and conservative DPO)."""
    reference: str = "base"
    """The DPO reference: ``base`` (the policy model named in ``policy``) or ``previous`` (the active version)."""
    policy_learning_rate: float = 5e-5
    """Peak AdamW learning rate of the policy update."""
    policy_epochs: float = 1.0
    """Passes over the round's preference pairs."""
    policy_max_steps: int = -1
    """If > 0, stop the policy update after this many optimiser steps (overrides ``policy_epochs``)."""
    policy_batch_size: int = 4
    """Preference pairs per policy micro-batch (dpo), or prompts per step (rloo: each with K samples)."""
    policy_lora_r: int | None = 8
    """LoRA rank of the policy update (PEFT); null for a full fine-tune."""
    policy_max_length: int = 512
    """Tokens per (prompt + answer) in the policy update; longer prompts are cut from the left."""
    policy_gradient_checkpointing: bool = False
    """Recompute activations in the policy update's backward pass instead of keeping them: far less memory (what
    TRL does by default), slower steps. Turn on when a round runs out of memory."""
    prompts_per_round: int = 16
    """Train-split prompts that get new candidates each round."""
    prompt_selection: str = "unused"
    """Which prompts: ``unused`` (never generated for, then the least recently), ``recent`` (newest first) or
    ``random`` (seeded by the round)."""
    candidates_per_prompt: int = 4
    """K: candidates generated per prompt; the best and worst by the reward model make a DPO pair."""
    max_new_tokens: int = 128
    """Bound on each generated answer."""
    temperature: float = 0.8
    """Sampling temperature of generation."""
    top_p: float = 0.95
    """Nucleus sampling: keep the smallest set of tokens with this much probability."""
    generation_batch_size: int = 16
    """Sequences (or images) per ``generate`` call."""
    image_size: int | None = None
    """Images: the side (pixels) the reward model resizes images to; null = what its backbone's config says (CLIP,
    ViT); backbones without one (ResNet, ConvNeXt) need it."""
    num_inference_steps: int = 25
    """Images: denoising steps per generated image."""
    diffusion_beta: float = 2000.0
    """Images: Diffusion-DPO's β·T·ω(λ_t) as one constant (2000–5000 in the paper for Stable Diffusion)."""
    human_pairs: bool = True
    """Mix the human pairs judged since the last policy round into the policy update."""
    eval_prompts: int = 16
    """Eval-split prompts on which the new policy is compared with the previous one (RM and humans)."""
    push_active_pairs: int = 16
    """Generated pairs with the highest reward-model disagreement pushed to annotators (active selection)."""
    push_priority: int = 10
    """Queue priority of the pushed comparisons (higher is served first); head-to-head ones get one more."""

    def snapshot(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> RoundConfig:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


LOSS_TYPES = ("sigmoid", "ipo", "robust", "hinge")
_CHOICES = {
    "tie_policy": ("drop", "soft"),
    "annotator_weighting": ("reliability", "uniform"),
    "policy_algorithm": ("dpo", "rloo"),
    "loss_type": LOSS_TYPES,
    "reference": ("base", "previous"),
    "prompt_selection": ("unused", "recent", "random"),
}
_POSITIVE = {"epochs", "learning_rate", "batch_size", "gradient_accumulation_steps", "max_length", "ensemble_size"}
_POSITIVE |= {"lora_r", "min_new_judgments", "min_train_pairs", "span_epochs", "span_learning_rate"}
_LIMITS = {"ensemble_size": 16, "max_length": 32768, "batch_size": 4096, "epochs": 1000, "learning_rate": 1.0}
_LIMITS |= {"span_epochs": 1000, "span_learning_rate": 1.0}
_POSITIVE |= {"beta", "policy_learning_rate", "policy_epochs", "policy_batch_size", "policy_lora_r"}
_POSITIVE |= {"policy_max_length", "prompts_per_round", "max_new_tokens", "temperature", "generation_batch_size"}
_POSITIVE |= {"num_inference_steps", "diffusion_beta", "image_size"}
_LIMITS |= {"policy_learning_rate": 1.0, "policy_epochs": 1000, "policy_batch_size": 4096, "beta": 100.0}
_LIMITS |= {"policy_max_length": 32768, "prompts_per_round": 100_000, "candidates_per_prompt": 64}
_LIMITS |= {"max_new_tokens": 4096, "temperature": 10.0, "top_p": 1.0, "generation_batch_size": 4096}
_LIMITS |= {
    "schedule_every_hours": 24 * 365,
    "eval_prompts": 100_000,
    "push_active_pairs": 100_000,
    "label_smoothing": 0.5,
}
_NULLABLE = ("backbone", "lora_r", "seed", "policy", "policy_lora_r", "image_size")


@functools.cache
def round_config_fields() -> tuple[dict[str, Any], ...]:
    """Every setting a project may set, for an editor: name, type, default, choices, whether it may be null, and
    the help text (the field's docstring above, read from this module's source so it is written once)."""
    helps: dict[str, str] = {}
    body = ast.parse(inspect.getsource(RoundConfig)).body[0].body
    for node, following in itertools.pairwise(body):
        is_doc = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
            helps[node.target.id] = " ".join(str(following.value.value).replace("``", "").split())
    described = []
    for f in fields(RoundConfig):
        default = f.default
        if isinstance(default, bool):
            kind = "boolean"
        elif f.name in _CHOICES:
            kind = "choice"
        elif isinstance(default, int) or f.name in ("lora_r", "seed", "policy_lora_r", "image_size"):
            kind = "integer"
        elif isinstance(default, float):
            kind = "number"
        else:
            kind = "string"
        described.append(
            {
                "name": f.name,
                "type": kind,
                "default": default,
                "choices": list(_CHOICES.get(f.name, ())),
                "nullable": f.name in _NULLABLE,
                "help": helps.get(f.name, ""),
            }
        )
    return tuple(described)


def training_settings_replace(*, project, settings: dict) -> dict:
    """Validate ``settings`` as a project's training settings and store them in place of the old ones; returns
    what was stored (the given keys, normalised). Raises :class:`ConfigInvalid` naming every bad key, and then
    stores nothing."""
    config = round_config_build(project_settings=settings)
    project.training_settings = {key: getattr(config, key) for key in settings}
    project.save(update_fields=["training_settings", "updated_at"])
    return project.training_settings


def round_config_build(*, project_settings: dict | None = None, overrides: dict | None = None) -> RoundConfig:
    """Merge defaults, Django settings, the project's ``training_settings`` and ``overrides``, and validate.

    Raises :class:`ConfigInvalid` naming every bad key (unknown keys included: a typo must not be ignored).
    """
    merged: dict[str, Any] = {}
    default_backbone = getattr(settings, "TRAINING_REWARD_BACKBONE", None)
    if default_backbone:
        merged["backbone"] = str(default_backbone)
    errors: dict[str, list[str]] = {}
    for source_name, source in (("training_settings", project_settings), ("config", overrides)):
        if source is None:
            continue
        if not isinstance(source, dict):
            errors[source_name] = ["Must be a JSON object."]
            continue
        merged.update(source)
    known = {f.name: f for f in fields(RoundConfig)}
    for key in merged:
        if key not in known:
            errors[key] = [f"Unknown training setting. Known: {', '.join(sorted(known))}."]
    values = {}
    for name, value in merged.items():
        if name not in known:
            continue
        try:
            values[name] = _check(name, value)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise ConfigInvalid(errors)
    return RoundConfig(**values)


def _check(name: str, value: Any) -> Any:
    default = next(f.default for f in fields(RoundConfig) if f.name == name)
    nullable = name in _NULLABLE
    if value is None:
        if nullable:
            return None
        raise ValueError("May not be null.")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("Must be true or false.")
        return value
    if name in ("backbone", "policy"):
        if not isinstance(value, str) or not value.strip() or len(value) > 500:
            raise ValueError("Must be a model id or a local path (a non-empty string of at most 500 characters).")
        backbone_check(value.strip())  # BackboneRefused is a ValueError: a 400 that names "backbone"
        return value.strip()
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"Must be one of {', '.join(_CHOICES[name])}.")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Must be a number.")
    if isinstance(default, int) or name in ("lora_r", "seed", "policy_lora_r", "image_size"):
        if not float(value).is_integer():
            raise ValueError("Must be an integer.")
        value = int(value)
        if abs(value) > 2**31:
            raise ValueError("Is too large.")
    elif not math.isfinite(value):
        raise ValueError("Must be a finite number.")
    if name in _POSITIVE and value <= 0:
        raise ValueError("Must be greater than 0.")
    if name == "candidates_per_prompt" and value < 2:
        raise ValueError("Must be at least 2: a pair needs two candidates.")
    if name in ("top_p", "label_smoothing", "schedule_every_hours", "eval_prompts", "push_active_pairs") and value < 0:
        raise ValueError("Must not be negative.")
    if name in ("max_steps", "policy_max_steps") and value != -1 and value <= 0:
        raise ValueError("Must be -1 (use epochs) or a positive number of steps.")
    if name == "seed" and not 0 <= value < 2**32 - 1024:
        # numpy wants a seed in [0, 2**32); ensemble members use seed + i.
        raise ValueError("Must be between 0 and 4294966271.")
    if name in ("eval_fraction", "warmup_ratio") and not 0.0 <= value < 1.0:
        raise ValueError("Must be at least 0 and less than 1.")
    if name in _LIMITS and value > _LIMITS[name]:
        raise ValueError(f"Must be at most {_LIMITS[name]}.")
    return value
