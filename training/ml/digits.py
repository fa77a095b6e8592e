"""The offline image demo: scikit-learn's handwritten digits, a class-conditional diffusion generator trained on one
half, a classifier trained on the other half as the hidden preference ("draw the digit you were asked for").

Nothing is downloaded: ``sklearn.datasets.load_digits`` ships its 1,797 8×8 images (UCI optdigits test set, values
0..16) inside the wheel. Images are upsampled to ``size``×``size`` (bilinear) and scaled to [-1, 1].

The halves, fixed by index so every machine and every run agrees (``digit_split``):

- generator half: even indices (899 images) — only :func:`train_digits_generator` sees them;
- classifier half: odd indices, of which ``i % 4 == 1`` (449) train the classifier and ``i % 4 == 3`` (449) are its
  held-out test set, never seen by either model.

The classifier is a small torch CNN rather than a scikit-learn model: it works on the same 16×16 tensors the
generator produces, tolerates the small shifts generated strokes have, saves as safetensors (no pickle to load from
an artifact folder), and trains in seconds. Its softmax probability of the prompted digit is the hidden reward.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .generation.diffusion import build_class_conditional_unet, png_to_tensor, save_class_conditional_generator
from .reward import atomic_directory

DIGIT_PROMPTS = tuple(f"a handwritten {d}" for d in range(10))
"""The generator's prompts; prompt d asks for digit d (class d)."""

CLASSIFIER_MANIFEST = "tandem_digit_classifier.json"
CLASSIFIER_WEIGHTS = "classifier.safetensors"

ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)``, called after every optimiser step."""

_PROMPT = re.compile(r"a handwritten (\d)")


# --- data ---------------------------------------------------------------------------------------------------------


def digit_images(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: images (N, 1, size, size) in [-1, 1] and labels (N,) int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (N, 1, 8, 8), 0..16 → [-1, 1]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images, torch.tensor(data.target, dtype=torch.int64)


def digit_split(n: int) -> dict[str, torch.Tensor]:
    """Indices of the three fixed parts: ``generator`` (even), ``classifier_train`` (i % 4 == 1),
    ``classifier_test`` (i % 4 == 3)."""
    index = torch.arange(n)
    return {
        "generator": index[index % 2 == 0],
        "classifier_train": index[index % 4 == 1],
        "classifier_test": index[index % 4 == 3],
    }


def prompt_digit(prompt: str) -> int:
    """``"a handwritten 7"`` → 7; anything else is a ``ValueError`` naming it."""
    match = _PROMPT.fullmatch(prompt.strip())
    if match is None:
        raise ValueError(f"not a digit prompt: {prompt!r} (expected 'a handwritten <0-9>')")
    return int(match.group(1))


# --- the generator ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitsGeneratorConfig:
    """How the digits generator is trained; saved in its manifest's ``extra``."""

    size: int = 16
    """Image side in pixels (the 8×8 digits are upsampled bilinearly)."""
    epochs: int = 60
    """Passes over the generator half (899 images): 15 steps each, 900 steps by default."""
    batch_size: int = 64
    learning_rate: float = 2e-3
    """AdamW peak learning rate, cosine-decayed to 0 over the run after a 50-step linear warm-up."""
    block_out_channels: tuple[int, ...] = (16, 32, 32)
    """UNet widths per resolution (16 → 8 → 4); attention in the lowest only. Small (280k parameters) so the demo
    trains in minutes on a CPU; wider UNets were more than twice as slow per step."""
    num_train_timesteps: int = 1000
    """DDPM noise levels (cosine schedule, Nichol & Dhariwal 2021: better than linear for small images)."""
    seed: int = 0
    """Initialisation, data order, noise and timesteps."""


def train_digits_generator(
    out_dir: str | os.PathLike,
    *,
    size: int = 16,
    epochs: int = DigitsGeneratorConfig.epochs,
    seed: int = 0,
    progress: ProgressFn | None = None,
    batch_size: int = DigitsGeneratorConfig.batch_size,
    learning_rate: float = DigitsGeneratorConfig.learning_rate,
    block_out_channels: Sequence[int] = DigitsGeneratorConfig.block_out_channels,
    num_train_timesteps: int = DigitsGeneratorConfig.num_train_timesteps,
) -> Path:
    """Train the class-conditional UNet on the generator half with the DDPM ε-prediction loss (Ho et al. 2020,
    eq. 14) and save it atomically as a generator folder (``generation.diffusion.load_image_generator`` loads it)."""
    from diffusers import DDPMScheduler

    config = DigitsGeneratorConfig(
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        block_out_channels=tuple(block_out_channels),
        num_train_timesteps=num_train_timesteps,
        seed=seed,
    )
    images, labels = digit_images(size)
    part = digit_split(len(labels))["generator"]
    images, labels = images[part], labels[part]  # (N, 1, S, S), (N,)

    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # initialisation
    unet = build_class_conditional_unet(size=size, block_out_channels=config.block_out_channels)
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=learning_rate, weight_decay=0.0)
    steps_per_epoch = -(-len(labels) // batch_size)
    total = epochs * steps_per_epoch
    warmup = min(50, total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / total)).item()))
    )
    started, step = time.monotonic(), 0
    unet.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=rng)
        for start in range(0, len(labels), batch_size):
            batch = order[start : start + batch_size]
            x0, y = images[batch], labels[batch]  # (B, 1, S, S), (B,)
            noise = torch.randn(x0.shape, generator=rng)
            t = torch.randint(0, num_train_timesteps, (len(batch),), generator=rng)
            eps = unet(scheduler.add_noise(x0, noise, t), t, class_labels=y).sample
            loss = F.mse_loss(eps, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if progress is not None:
                progress(step, total, loss.item())
    extra = {
        "dataset": "sklearn.datasets.load_digits",
        "split": "generator half: even indices",
        "training": {**asdict(config), "steps": step, "seconds": round(time.monotonic() - started, 1)},
    }
    return save_class_conditional_generator(
        out_dir, unet=unet.eval(), scheduler=scheduler, prompts=DIGIT_PROMPTS, extra=extra
    )


# --- the classifier (hidden preference) ---------------------------------------------------------------------------


class DigitCNN(nn.Module):
    """(B, 1, S, S) in [-1, 1] → (B, 10) logits: two conv + pool stages and a linear head (S divisible by 4)."""

    def __init__(self, size: int = 16, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, w, S/2, S/2)
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 2w, S/4, S/4)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width * (size // 4) ** 2, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_digit_classifier(
    out_dir: str | os.PathLike,
    *,
    size: int = 16,
    epochs: int = 40,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    width: int = 16,
    seed: int = 0,
) -> Path:
    """Train :class:`DigitCNN` on ``classifier_train`` (cross-entropy, AdamW, ±1-pixel random shifts so generated
    strokes slightly off the data's grid are judged by shape), test on ``classifier_test``; save atomically."""
    from safetensors.torch import save_file

    images, labels = digit_images(size)
    split = digit_split(len(labels))
    train_x, train_y = images[split["classifier_train"]], labels[split["classifier_train"]]
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitCNN(size, width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-2)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_y), generator=rng)
        for start in range(0, len(train_y), batch_size):
            batch = order[start : start + batch_size]
            shift = torch.randint(-1, 2, (2,), generator=rng).tolist()
            x = torch.roll(train_x[batch], shifts=shift, dims=(2, 3))  # (B, 1, S, S); the digits' border is blank
            loss = F.cross_entropy(model(x), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        test = split["classifier_test"]
        probs = model(images[test]).softmax(-1)  # (N_test, 10)
        accuracy = (probs.argmax(-1) == labels[test]).float().mean().item()
        confidence = probs.gather(1, labels[test][:, None]).mean().item()
    manifest = {
        "size": size,
        "width": width,
        "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed},
        "split": "train: i % 4 == 1, test: i % 4 == 3 (sklearn.datasets.load_digits order)",
        "test_accuracy": accuracy,
        "test_mean_confidence": confidence,
        "versions": {"torch": torch.__version__},
    }
    with atomic_directory(out_dir) as staging:
        save_file(model.state_dict(), staging / CLASSIFIER_WEIGHTS)
        (staging / CLASSIFIER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(out_dir)


def load_digit_classifier(path: str | os.PathLike) -> tuple[DigitCNN, dict]:
    """The saved classifier (eval mode) and its manifest."""
    from safetensors.torch import load_file

    path = Path(path)
    manifest = json.loads((path / CLASSIFIER_MANIFEST).read_text())
    model = DigitCNN(manifest["size"], manifest["width"])
    model.load_state_dict(load_file(path / CLASSIFIER_WEIGHTS))
    return model.eval(), manifest


class DigitClassifierPreference:
    """Hidden preference for images: the classifier's probability that the image shows the prompted digit.

    ``score(prompts, images_png)`` follows ``hidden_preference.HiddenPreference`` with PNG bytes as the answers.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._model, manifest = load_digit_classifier(self.path)
        self._size = manifest["size"]

    @property
    def name(self) -> str:
        return f"digit-classifier:{self.path.name}"

    @torch.no_grad()
    def score(self, prompts: Sequence[str], answers: Sequence[bytes]) -> list[float]:
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts for {len(answers)} images")
        if not prompts:
            return []
        digits = torch.tensor([prompt_digit(p) for p in prompts])  # (B,)
        images = torch.stack([png_to_tensor(png, channels=1, size=self._size) for png in answers])  # (B, 1, S, S)
        probs = self._model(images).softmax(-1)  # (B, 10)
        return probs.gather(1, digits[:, None])[:, 0].tolist()


def build_digits_reward_backbone(
    out_dir: str | os.PathLike, *, size: int = 16, hidden_sizes: Sequence[int] = (32, 64), seed: int = 0
) -> Path:
    """A randomly initialised image-only ``ResNetModel`` for ``size``×``size`` images, saved atomically with
    ``save_pretrained``: the backbone of the demo's image reward model (``training.ml.media_reward``).

    Nothing pretrained ships offline, so the reward model learns from the annotators' pairs alone; a small CNN
    does that best from scratch. Two basic stages (≈ 80k parameters for (32, 64)): the 7×7 stride-2 stem and its
    pool take 16 → 4, the second stage 4 → 2, pooled to one vector. ``image_size`` is written into the config
    (ResNet's has none) so the reward model needs no separate setting to know the side.
    """
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig(
        num_channels=3,  # the reward model feeds RGB (grey digits are repeated over the channels)
        embedding_size=hidden_sizes[0],
        hidden_sizes=list(hidden_sizes),
        depths=[1] * len(hidden_sizes),
        layer_type="basic",
        image_size=size,
    )
    torch.manual_seed(seed)
    model = ResNetModel(config)
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        # Scale to [-1, 1], as the generator's pixels: media_reward reads mean and std from here.
        processor = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": size}
        (staging / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return Path(out_dir)


def evaluate_digits_generator(
    generator_path: str | os.PathLike,
    classifier_path: str | os.PathLike,
    *,
    per_digit: int = 10,
    num_inference_steps: int = 50,
    base_seed: int = 0,
) -> dict[str, float]:
    """Mean classifier confidence in the prompted digit over ``per_digit`` samples of each digit, next to its mean
    confidence on the real held-out digits (``classifier_test``): the gap is what preference training can close."""
    from .generation.diffusion import load_image_generator

    generator = load_image_generator(generator_path)
    judge = DigitClassifierPreference(classifier_path)
    rows = generator.generate(
        list(DIGIT_PROMPTS), k=per_digit, num_inference_steps=num_inference_steps, base_seed=base_seed
    )
    prompts = [DIGIT_PROMPTS[image.prompt_index] for row in rows for image in row]
    scores = torch.tensor(judge.score(prompts, [image.png for row in rows for image in row]))
    with torch.no_grad():
        images, labels = digit_images(judge._size)
        test = digit_split(len(labels))["classifier_test"]
        probs = judge._model(images[test]).softmax(-1)
        real = probs.gather(1, labels[test][:, None])
    return {
        "generated_mean_confidence": scores.mean().item(),
        "generated_share_above_half": (scores > 0.5).float().mean().item(),
        "real_mean_confidence": real.mean().item(),
        "samples": len(scores),
    }
