"""Reward models that see pixels: Bradley–Terry on judged image pairs (PickScore / ImageReward style).

Read top to bottom: image references → pixels → config → model (backbone + head) → training loop → scoring and
evaluation → atomic save / load.

**Images as plain data** (the one convention of this module). A candidate's image is referenced by a string, so
:class:`~training.ml.pairs.JudgmentRecord` candidates and :class:`~training.ml.pairs.PreferencePair` ``chosen`` /
``rejected`` carry it unchanged and ``build_preference_pairs`` splits and snapshots image judgments exactly like
text ones:

- ``"data:image/png;base64,iVBOR…"`` — the image inline (any format Pillow reads; :func:`image_data_uri` builds one);
- any other string (or ``os.PathLike``) — a file path; a leading ``file://`` is stripped. Relative paths are
  resolved against the process's working directory: Django code should pass absolute media paths.

:meth:`ImageRewardModel.score` also takes encoded ``bytes`` (PNG, JPEG, …) and ``PIL.Image.Image`` objects. Every
image is converted to RGB, its shortest edge resized to ``image_size`` (bicubic) and centre-cropped to a square —
CLIP's own preprocessing — then normalised with the backbone's ``image_mean`` / ``image_std`` (from its
``preprocessor_config.json``; 0.5 / 0.5 when it has none). An image that cannot be read raises
:class:`ImageLoadError` naming the pair (index, comparison, side, candidate) or the position in ``score``'s input.

**One design: reward = MLP(features), features = [u; t; u ⊙ t] for CLIP, the pooled image vector otherwise.**
u and t are CLIP's L2-normalised projected image and text embeddings. The u block lets the head learn
prompt-independent quality (aesthetics, exposure, artefacts); u ⊙ t is the prompt–image alignment, and PickScore's
s · cos(u, t) (Kirstain et al. 2023) is the special case of a linear head putting weight s on every u ⊙ t
coordinate; ImageReward (Xu et al. 2023) is likewise an MLP over a fused image–text vector. So one head covers
both without a switch, and the same head works on an image-only backbone (a small ViT / ConvNeXt / ResNet from
``AutoModel``, e.g. for the offline digits demo where no pretrained CLIP ships), which then ignores the prompt.
Image-only features are the backbone's ``pooler_output`` (flattened), else the first token (ViT) or the spatial
mean (CNN) of ``last_hidden_state``. The backbone is fine-tuned, frozen (``freeze_backbone``: the head alone
trains and ensemble members share one backbone) or adapted with LoRA (merged before saving).

**Own loop, not TRL.** TRL's ``RewardTrainer`` only tokenizes text. The loop is AdamW + linear decay +
gradient clipping, with the loss from :mod:`training.ml.losses` (margins, soft tie labels and pair weights as in
the text model) and ``progress(step, total, loss)`` after every step of every ensemble member.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPModel, PreTrainedModel, PreTrainedTokenizerBase

from .backbones import resolve_backbone
from .evaluate import _pearson, reward_metrics
from .losses import get_loss
from .pairs import PairSet, PreferencePair
from .reward import EVAL_JUDGMENT_IDS, JUDGMENT_IDS, atomic_directory, member_dirs, read_judgment_ids

MANIFEST = "tandem_image_reward.json"
"""Written beside the weights: training config, preprocessing, member folders, data snapshot id."""
HEAD_FILE = "reward_head.safetensors"
"""Each member's head, in its member folder."""

ImageSource = str | os.PathLike | bytes | Image.Image
"""A data URI, a file path, encoded image bytes or a Pillow image (see the module docstring)."""
ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)``, called after every optimiser step (all ensemble members counted)."""


class ImageLoadError(ValueError):
    """An image reference that cannot be read or decoded; the message says which pair or input it belongs to."""


# --- image references → pixels ------------------------------------------------------------------------------------


def image_data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:<mime>;base64,<data>``: encoded image bytes as a candidate "text"."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def load_image(source: ImageSource) -> Image.Image:
    """Decode one image reference into an RGB Pillow image (fully read, so a truncated file fails here)."""
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, bytes):
            stream = io.BytesIO(source)
        elif isinstance(source, str) and source.startswith("data:"):
            header, _, payload = source.partition(",")
            if not header.endswith(";base64"):
                raise ValueError("data URIs must be base64-encoded (data:image/...;base64,...)")
            stream = io.BytesIO(base64.b64decode(payload, validate=True))
        else:
            path = os.fspath(source)
            stream = path.removeprefix("file://")
        image = Image.open(stream)
        image.load()
    return image.convert("RGB")


def _describe(source: ImageSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<{source.mode} image {source.size}>"
    text = os.fspath(source)
    return text if len(text) <= 60 else f"{text[:40]}…({len(text)} chars)"


def square_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """Shortest edge → ``size`` (bicubic), centre crop to ``size`` × ``size``: a (3, size, size) uint8 tensor."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    crop = resized.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(crop, dtype=np.uint8).copy()).permute(2, 0, 1)  # (H, W, 3) → (3, H, W)


@dataclass(frozen=True)
class Preprocess:
    """How images become pixel values for the backbone; saved in the manifest."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) uint8 → (N, 3, S, S) float: scaled to [0, 1], then (x − mean) / std per channel."""
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (pixels.float() / 255.0 - mean) / std


def brightness(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) uint8 → (N,) mean luma (ITU-R BT.601 weights) in [0, 1]."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 * weights).sum(1).mean((1, 2))


# --- config ---------------------------------------------------------------------------------------------------------


@dataclass
class ImageRewardConfig:
    """Everything that decides an image reward-model run; saved as JSON beside the checkpoint."""

    backbone: str
    """Folder (or cached hub id) of a ``CLIPModel`` (image + text towers, with its tokenizer) or of an image-only
    ``AutoModel`` (ViT, ConvNeXt, ResNet, …), loaded with ``from_pretrained``."""
    image_size: int | None = None
    """Square side the images are resized / cropped to; None takes the backbone's ``image_size`` (CNN configs
    have none, so it must be set for them)."""
    head_hidden: int = 128
    """Width of the head's hidden layer (Linear → GELU → Linear); 0 for a linear head."""
    max_text_length: int = 77
    """Prompt tokens for CLIP's text tower (cut on the right, capped at its position embeddings)."""
    loss: str = "bradley_terry"
    """Key in ``training.ml.losses.LOSSES``."""
    use_margin: bool = True
    """Use the pairs' margins (from preference strength); False trains plain Bradley–Terry."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate (backbone or adapters, and the head)."""
    head_learning_rate: float | None = None
    """Learning rate of the new head; None uses ``learning_rate``. A fresh head usually wants a larger one."""
    num_epochs: float = 1.0
    """Passes over the train pairs (per ensemble member)."""
    max_steps: int = -1
    """If > 0, stop after this many optimiser steps per member (overrides ``num_epochs``)."""
    batch_size: int = 16
    """Pairs per optimiser step (each pair is two images and one prompt)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    ensemble_size: int = 1
    """Number of independently trained members; > 1 gives a disagreement (uncertainty) per pair."""
    bootstrap: bool = True
    """With ``ensemble_size > 1``: each member trains on a resample (with replacement) of the train pairs."""
    freeze_backbone: bool = False
    """Train the head only; the members then share one backbone (in memory and on disk)."""
    lora_r: int | None = None
    """If set, train LoRA adapters of this rank on every linear layer (PEFT) plus the head; merged before saving.
    Exclusive with ``freeze_backbone``; CNN backbones without linear layers cannot use it."""
    seed: int = 0
    """Seed of member 0; member i uses ``seed + i`` (head initialisation, data order, bootstrap sample)."""


# --- the model ------------------------------------------------------------------------------------------------------


class ImageRewardMember(torch.nn.Module):
    """One ensemble member: backbone (CLIP or image-only) → features → MLP head → scalar reward."""

    def __init__(self, backbone: PreTrainedModel, head: torch.nn.Module, *, native_size: int | None):
        super().__init__()
        self.backbone, self.head, self.native_size = backbone, head, native_size

    @property
    def is_clip(self) -> bool:
        return isinstance(self.backbone, CLIPModel) or getattr(self.backbone.config, "model_type", "") == "clip"

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels → (N, D) image features (CLIP: unit-norm projected embedding u)."""
        kwargs = {}
        if self.native_size and pixel_values.shape[-1] != self.native_size:
            kwargs["interpolate_pos_encoding"] = True  # ViT / CLIP at another resolution
        if self.is_clip:
            u = self.backbone.get_image_features(pixel_values=pixel_values, **kwargs).pooler_output  # (N, P)
            return F.normalize(u, dim=-1)
        out = self.backbone(pixel_values=pixel_values, **kwargs)
        if getattr(out, "pooler_output", None) is not None:
            return out.pooler_output.flatten(1)  # ResNet: (N, C, 1, 1) → (N, C)
        hidden = out.last_hidden_state
        return hidden[:, 0] if hidden.dim() == 3 else hidden.mean((2, 3))  # ViT CLS (N, H) / CNN (N, C)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(N, T) prompt tokens → (N, P) unit-norm projected text embedding t (CLIP only)."""
        t = self.backbone.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return F.normalize(t, dim=-1)

    def reward(self, image: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """(N, D) image and (N, P) text features (None for image-only) → (N,) rewards."""
        features = image if text is None else torch.cat([image, text, image * text], dim=-1)  # (N, 3P) for CLIP
        return self.head(features).squeeze(-1)


def _head(in_features: int, hidden: int) -> torch.nn.Module:
    if hidden <= 0:
        return torch.nn.Linear(in_features, 1)
    return torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))


@dataclass
class ImageRewardModel:
    """An ensemble of image reward members (one member is an ensemble of one), their tokenizer and preprocessing."""

    members: list[ImageRewardMember]
    tokenizer: PreTrainedTokenizerBase | None
    """CLIP's tokenizer; None for image-only backbones (prompts are then ignored)."""
    preprocess: Preprocess
    config: ImageRewardConfig
    snapshot_id: str | None = None
    judgment_ids: tuple[str, ...] = ()
    """The judgments it was trained from (``PairSet.train_judgment_ids``)."""
    eval_judgment_ids: tuple[str, ...] = ()
    """The held-out judgments of its data snapshot (``PairSet.eval_judgment_ids``)."""
    pair_options: dict = field(default_factory=dict)

    def pixels(self, images: Sequence[ImageSource], *, what: Callable[[int], str] | None = None) -> torch.Tensor:
        """Decode and square every image: (N, 3, S, S) uint8. ``what(i)`` names input i in errors."""
        out = torch.empty(len(images), 3, self.preprocess.size, self.preprocess.size, dtype=torch.uint8)
        for i, source in enumerate(images):
            out[i] = _square_or_raise(source, self.preprocess.size, what(i) if what else f"image {i}")
        return out

    def tokens(self, prompts: Sequence[str]) -> dict[str, torch.Tensor] | None:
        """CLIP prompt tokens, (N, T) ids and mask; None for image-only backbones."""
        if self.tokenizer is None:
            return None
        return _tokenize(self.tokenizer, prompts, self.config.max_text_length)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], images: Sequence[ImageSource], *, batch_size: int = 32) -> torch.Tensor:
        """Rewards of each (prompt, image), per member: shape (M, N), on the CPU (as ``RewardModel.score``)."""
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
        return self.score_pixels(prompts, self.pixels(images), batch_size=batch_size)

    @torch.no_grad()
    def score_pixels(self, prompts: Sequence[str], pixels: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
        """Like :meth:`score` on already decoded (N, 3, S, S) uint8 pixels: (M, N)."""
        out = torch.empty(len(self.members), len(prompts))  # (M, N)
        for start in range(0, len(prompts), batch_size):
            stop = start + batch_size
            values = self.preprocess.normalize(pixels[start:stop])  # (b, 3, S, S)
            tokens = self.tokens(prompts[start:stop])
            shared: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}  # one forward per distinct backbone
            for m, member in enumerate(self.members):
                member.eval()
                key = id(member.backbone)
                if key not in shared:
                    device = next(member.parameters()).device
                    shared[key] = _features(member, values.to(device), tokens, device)
                out[m, start:stop] = member.reward(*shared[key]).float().cpu()
        return out

    def score_pairs(
        self, pairs: Sequence[PreferencePair], *, batch_size: int = 32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) rewards per member, each (M, B)."""
        chosen, rejected = self.pair_pixels(pairs)
        prompts = [p.prompt for p in pairs]
        return (
            self.score_pixels(prompts, chosen, batch_size=batch_size),
            self.score_pixels(prompts, rejected, batch_size=batch_size),
        )

    def pair_pixels(self, pairs: Sequence[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) uint8 pixels of the chosen and of the rejected images; errors name the pair."""
        if not pairs:
            empty = torch.empty(0, 3, self.preprocess.size, self.preprocess.size, dtype=torch.uint8)
            return empty, empty
        cache = _PixelCache(self.preprocess.size)
        chosen = torch.stack([cache.get(p.chosen, _pair_name(i, p, "chosen")) for i, p in enumerate(pairs)])
        rejected = torch.stack([cache.get(p.rejected, _pair_name(i, p, "rejected")) for i, p in enumerate(pairs)])
        return chosen, rejected


def _features(
    member: ImageRewardMember, values: torch.Tensor, tokens: dict[str, torch.Tensor] | None, device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    image = member.image_features(values)
    text = None if tokens is None else member.text_features(tokens["input_ids"].to(device), tokens["mask"].to(device))
    return image, text


def _tokenize(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(list(prompts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "mask": enc["attention_mask"]}


def _square_or_raise(source: ImageSource, size: int, what: str) -> torch.Tensor:
    try:
        return square_pixels(load_image(source), size)
    except Exception as exc:  # Pillow raises many types (OSError, UnidentifiedImageError, DecompressionBombError…)
        raise ImageLoadError(f"{what}: cannot read image {_describe(source)} ({type(exc).__name__}: {exc})") from exc


def _pair_name(index: int, pair: PreferencePair, side: str) -> str:
    candidate = pair.chosen_id if side == "chosen" else pair.rejected_id
    return f"pair {index} (comparison {pair.comparison_id}, prompt {pair.prompt_id}, {side} candidate {candidate})"


class _PixelCache:
    """Decode each distinct reference once: K-way rankings reuse every candidate in K − 1 pairs.

    Memory is 3 · S² bytes per distinct image (768 B at 16 px, 150 KB at 224 px).
    """

    def __init__(self, size: int):
        self.size, self.pixels = size, {}

    def get(self, source: str, what: str) -> torch.Tensor:
        if source not in self.pixels:
            self.pixels[source] = _square_or_raise(source, self.size, what)
        return self.pixels[source]


# --- building and training ------------------------------------------------------------------------------------------


def _backbone_info(path: str, config: ImageRewardConfig) -> tuple[Preprocess, int | None, bool]:
    """(preprocessing, the backbone's native image size, is it CLIP) from the backbone's config files."""
    hf_config = AutoConfig.from_pretrained(path)
    is_clip = hf_config.model_type == "clip"
    native = getattr(hf_config.vision_config if is_clip else hf_config, "image_size", None)
    native = native if isinstance(native, int) else None
    size = config.image_size or native
    if not size:
        raise ValueError(f"{config.backbone}: its config has no image_size; set ImageRewardConfig.image_size")
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    processor_file = Path(path) / "preprocessor_config.json"
    if processor_file.exists():
        raw = json.loads(processor_file.read_text())
        mean, std = tuple(raw.get("image_mean", mean)), tuple(raw.get("image_std", std))
    return Preprocess(size=size, mean=mean, std=std), native, is_clip


def _load_backbone(path: str | Path, is_clip: bool) -> PreTrainedModel:
    cls = CLIPModel if is_clip else AutoModel
    return cls.from_pretrained(path, dtype=torch.float32)


def _feature_size(backbone: PreTrainedModel, is_clip: bool, size: int, native: int | None) -> int:
    """Width of the head's input: 3P for CLIP ([u; t; u ⊙ t]), else found by one forward of a blank image."""
    if is_clip:
        return 3 * backbone.config.projection_dim
    probe = ImageRewardMember(backbone, torch.nn.Identity(), native_size=native)
    with torch.no_grad():
        return probe.image_features(torch.zeros(1, 3, size, size)).shape[-1]


def train_image_reward_model(
    pairs: PairSet, config: ImageRewardConfig, *, progress: ProgressFn | None = None
) -> ImageRewardModel:
    """Train ``config.ensemble_size`` image reward members on ``pairs.train`` (candidates are image references).

    Every train image is decoded before the first step, so an unreadable one fails fast with an
    :class:`ImageLoadError` naming its pair.
    """
    if not pairs.train:
        raise ValueError("no training pairs: the PairSet's train split is empty")
    if config.freeze_backbone and config.lora_r is not None:
        raise ValueError("freeze_backbone and lora_r exclude each other: pick one")
    path = resolve_backbone(config.backbone)
    preprocess, native, is_clip = _backbone_info(path, config)
    tokenizer = AutoTokenizer.from_pretrained(path) if is_clip else None
    if tokenizer is not None:
        limit = AutoConfig.from_pretrained(path).text_config.max_position_embeddings
        config = replace(config, max_text_length=min(config.max_text_length, limit))
    base = _load_backbone(path, is_clip)
    if config.freeze_backbone:
        base.requires_grad_(False).eval()
    in_features = _feature_size(base, is_clip, preprocess.size, native)

    model = ImageRewardModel(
        members=[],
        tokenizer=tokenizer,
        preprocess=preprocess,
        config=config,
        snapshot_id=pairs.snapshot_id,
        judgment_ids=pairs.train_judgment_ids,
        eval_judgment_ids=pairs.eval_judgment_ids,
        pair_options=dict(pairs.options),
    )
    chosen_px, rejected_px = model.pair_pixels(pairs.train)  # (B, 3, S, S) uint8 each; fails fast on a bad image
    n = len(pairs.train)
    for i in range(config.ensemble_size):
        seed = config.seed + i
        rng = random.Random(seed)
        rows = list(range(n))
        if config.ensemble_size > 1 and config.bootstrap:
            rows = [rng.randrange(n) for _ in range(n)]
        torch.manual_seed(seed)  # the head's initialisation
        backbone = base if config.freeze_backbone or i == config.ensemble_size - 1 else copy.deepcopy(base)
        member = ImageRewardMember(backbone, _head(in_features, config.head_hidden), native_size=native)
        _train_member(member, model, pairs.train, rows, chosen_px, rejected_px, rng, member_index=i, progress=progress)
        model.members.append(member.eval())
    return model


def _train_member(
    member: ImageRewardMember,
    model: ImageRewardModel,
    pairs: Sequence[PreferencePair],
    rows: list[int],
    chosen_px: torch.Tensor,
    rejected_px: torch.Tensor,
    rng: random.Random,
    *,
    member_index: int,
    progress: ProgressFn | None,
) -> None:
    config = model.config
    loss_fn = get_loss(config.loss)
    if config.lora_r is not None:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, target_modules="all-linear")
        member.backbone = get_peft_model(member.backbone, lora)
    trainable_backbone = [p for p in member.backbone.parameters() if p.requires_grad]
    head_lr = config.head_learning_rate or config.learning_rate
    groups = [{"params": list(member.head.parameters()), "lr": head_lr}]
    if trainable_backbone:
        groups.append({"params": trainable_backbone, "lr": config.learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(rows) / config.batch_size)
    total = config.max_steps if config.max_steps > 0 else max(1, round(config.num_epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)  # linear decay to 0
    member.head.train()
    if not config.freeze_backbone:
        member.backbone.train()
    step = 0
    while step < total:
        order = rows[:]
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            if step >= total:
                break
            batch = order[start : start + config.batch_size]
            b = len(batch)
            values = model.preprocess.normalize(torch.cat([chosen_px[batch], rejected_px[batch]]))  # (2B, 3, S, S)
            tokens = model.tokens([pairs[j].prompt for j in batch])  # (B, T) ids and mask, or None
            image = member.image_features(values)  # (2B, D)
            text = None
            if tokens is not None:
                text = member.text_features(tokens["input_ids"], tokens["mask"]).repeat(2, 1)  # (2B, P): both halves
            rewards = member.reward(image, text)  # (2B,) chosen, then rejected
            loss, metrics = loss_fn(
                rewards[:b],
                rewards[b:],
                margin=torch.tensor([pairs[j].margin if config.use_margin else 0.0 for j in batch]),
                soft_label=torch.tensor([pairs[j].label for j in batch]),
                weight=torch.tensor([pairs[j].weight for j in batch]),
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if progress is not None:
                progress(member_index * total + step, config.ensemble_size * total, metrics["loss"])
    if config.lora_r is not None:
        member.backbone = member.backbone.merge_and_unload()  # a plain model again: from_pretrained, no PEFT


# --- evaluation -----------------------------------------------------------------------------------------------------

LENGTH_KEYS = ("reward_length_corr", "prefers_longer_rate", "data_longer_chosen_rate")
""":func:`reward_metrics`' length-bias keys: a reference's length says nothing about an image, so they are dropped."""


def evaluate_image_reward_model(model: ImageRewardModel, pairs: Sequence[PreferencePair], *, n_bins: int = 10) -> dict:
    """:func:`~training.ml.evaluate.reward_metrics` on held-out image pairs, with a brightness baseline in place
    of the length bias: ``reward_brightness_corr`` (Pearson of reward and mean luma over every scored image),
    ``prefers_brighter_rate`` (the model picks the brighter image) next to ``data_brighter_chosen_rate`` (the
    labels do: the brightness-only baseline's accuracy) — exposure is the image counterpart of length, the cheap
    cue a reward model learns instead of the judged quality. Pairs of equal brightness count for neither rate.
    Image size is not used: a project's candidates usually share one resolution.
    """
    chosen_px, rejected_px = model.pair_pixels(pairs)  # (B, 3, S, S) each
    prompts = [p.prompt for p in pairs]
    chosen = model.score_pixels(prompts, chosen_px)  # (M, B)
    rejected = model.score_pixels(prompts, rejected_px)  # (M, B)
    metrics = reward_metrics(pairs, chosen, rejected, n_bins=n_bins, baselines=("position",))
    metrics = {k: v for k, v in metrics.items() if k not in LENGTH_KEYS}

    chosen_light, rejected_light = brightness(chosen_px), brightness(rejected_px)  # (B,) each
    decided = torch.tensor([p.label != 0.5 for p in pairs], dtype=torch.bool)
    unequal = decided & (chosen_light != rejected_light)
    model_picks_chosen = (chosen - rejected).mean(0) > 0  # (B,)
    chosen_brighter = chosen_light > rejected_light  # (B,)
    corr = _pearson(torch.cat([chosen.mean(0), rejected.mean(0)]), torch.cat([chosen_light, rejected_light]))
    metrics["reward_brightness_corr"] = None if math.isnan(corr) else corr
    metrics["prefers_brighter_rate"] = _mean((model_picks_chosen == chosen_brighter)[unequal])
    metrics["data_brighter_chosen_rate"] = _mean(chosen_brighter[unequal])
    return metrics


def _mean(x: torch.Tensor) -> float | None:
    return x.float().mean().item() if x.numel() else None


# --- saving and loading ---------------------------------------------------------------------------------------------


def save_image_reward_model(model: ImageRewardModel, path: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (never over an existing path) and return ``path``.

    Layout: member 0's backbone (config + safetensors; CLIP's tokenizer; the backbone's
    ``preprocessor_config.json``) at the top, so ``CLIPModel.from_pretrained(path)`` / ``AutoModel.from_pretrained
    (path)`` load it; ``reward_head.safetensors``; ``members/<i>/`` for further members (a head only when the
    backbone was frozen and is shared); ``tandem_image_reward.json`` (config, preprocessing, members, snapshot id,
    versions, ``extra``), ``judgment_ids.txt`` (trained from) and ``eval_judgment_ids.txt`` (held out).
    """
    import transformers

    path = Path(path)
    dirs = member_dirs(len(model.members))
    shared = len({id(m.backbone) for m in model.members}) == 1
    with atomic_directory(path) as staging:
        entries = []
        for member, rel in zip(model.members, dirs, strict=True):
            folder = staging / rel
            folder.mkdir(parents=True, exist_ok=True)
            backbone_rel = "." if shared else rel
            if rel == "." or not shared:
                member.backbone.save_pretrained(folder)
            state = {k: v.detach().contiguous().cpu() for k, v in member.head.state_dict().items()}
            save_file(state, folder / HEAD_FILE)
            entries.append({"backbone": backbone_rel, "head": f"{rel}/{HEAD_FILE}"})
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(staging)
        (staging / "preprocessor_config.json").write_text(json.dumps(_processor_config(model.preprocess), indent=2))
        manifest = {
            "format": 1,
            "kind": "image_reward",
            "members": entries,
            "native_size": model.members[0].native_size,
            "preprocess": asdict(model.preprocess),
            "snapshot_id": model.snapshot_id,
            "judgment_count": len(model.judgment_ids),  # trained from; held-out ones are counted apart
            "eval_judgment_count": len(model.eval_judgment_ids),
            "pair_options": model.pair_options,
            "config": asdict(model.config),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "extra": extra or {},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        (staging / JUDGMENT_IDS).write_text("".join(f"{j}\n" for j in model.judgment_ids))
        (staging / EVAL_JUDGMENT_IDS).write_text("".join(f"{j}\n" for j in model.eval_judgment_ids))
    return path


def _processor_config(preprocess: Preprocess) -> dict:
    """Our preprocessing in ``CLIPImageProcessor``'s terms (it resizes the shortest edge and centre-crops too), so
    ``AutoImageProcessor.from_pretrained(<artifact>)`` prepares images as this model was trained on them."""
    size = preprocess.size
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,  # bicubic
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(preprocess.mean),
        "image_std": list(preprocess.std),
    }


def load_image_reward_model(path: str | os.PathLike, *, device: str | torch.device | None = None) -> ImageRewardModel:
    """Load what :func:`save_image_reward_model` wrote (every member), ready to score."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    config = ImageRewardConfig(**manifest["config"])
    is_clip = AutoConfig.from_pretrained(path).model_type == "clip"
    backbones: dict[str, PreTrainedModel] = {}
    members = []
    for entry in manifest["members"]:
        if entry["backbone"] not in backbones:
            backbones[entry["backbone"]] = _load_backbone(path / entry["backbone"], is_clip).eval()
        state = load_file(path / entry["head"])
        in_features = state["0.weight" if config.head_hidden > 0 else "weight"].shape[1]
        head = _head(in_features, config.head_hidden)
        head.load_state_dict(state)
        member = ImageRewardMember(backbones[entry["backbone"]], head, native_size=manifest["native_size"])
        members.append(member.to(device or "cpu").eval())
    raw = manifest["preprocess"]
    return ImageRewardModel(
        members=members,
        tokenizer=AutoTokenizer.from_pretrained(path) if is_clip else None,
        preprocess=Preprocess(size=raw["size"], mean=tuple(raw["mean"]), std=tuple(raw["std"])),
        config=config,
        snapshot_id=manifest["snapshot_id"],
        judgment_ids=read_judgment_ids(path / JUDGMENT_IDS),
        eval_judgment_ids=read_judgment_ids(path / EVAL_JUDGMENT_IDS),
        pair_options=manifest.get("pair_options", {}),
    )
