"""K image candidates per prompt from a diffusion model, each with a seed that reproduces it in any batch.

Two generators behind one :meth:`ImageGenerator.generate` signature, chosen by what the folder holds
(:func:`load_image_generator`):

- **class-conditional** (``tandem_generator.json`` + ``unet/`` + ``scheduler/``): a diffusers ``UNet2DModel`` with
  a class embedding (``class_embed_type=None, num_class_embeds=N``: an ``nn.Embedding`` added to the timestep
  embedding) sampled by our own DDIM loop in pixel space. Prompts map to classes through the manifest
  (``"a handwritten 0"`` → 0 for the digits demo, ``training.ml.digits``); an unknown prompt is a ``ValueError``.
- **text-to-image** (``model_index.json``): a ``StableDiffusionPipeline``-class folder loaded with
  ``DiffusionPipeline.from_pretrained``, batched with ``num_images_per_prompt`` and a list of generators.

Why one ``torch.Generator`` per image: a sample's randomness is its initial noise x_T plus, for stochastic samplers,
the noise added at every step. Drawn from one generator for the whole batch, an image would depend on its position
and on its batch-mates. So every image gets its own generator seeded with its recorded seed: our DDIM loop draws
x_T and any per-step noise (η > 0) from it, and diffusers' pipelines accept a list of generators (``randn_tensor``
draws element i from ``generator[i]``, and the schedulers' ``step`` passes the list on). The same seed, weights,
dtype and device type then give the same image alone or in any batch; like text generation (``generation.text``),
a different batch shape can change a pixel's last float bits, which changes a PNG only when a value sits on a
rounding boundary.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from ..reward import atomic_directory
from .text import candidate_seed

MANIFEST = "tandem_generator.json"
"""The class-conditional folder's manifest: ``kind``, the prompt → class mapping, image shape, versions, extra."""

CLASS_CONDITIONAL = "class-conditional"
TEXT_TO_IMAGE = "text-to-image"

ProgressFn = Callable[[int, int], None]
"""``progress(images_done, images_total)``, called after every batch."""


@dataclass(frozen=True)
class GeneratedImage:
    """One sampled image candidate, as plain data."""

    prompt_index: int
    """Position of its prompt in the ``prompts`` given to ``generate``."""
    png: bytes
    """The image, PNG-encoded (grayscale for one channel, RGB for three)."""
    seed: int
    """Regenerates exactly this image with the same generator folder, prompt and ``num_inference_steps``."""
    width: int
    height: int


class ImageGenerator(Protocol):
    kind: str

    def generate(
        self,
        prompts: Sequence[str],
        *,
        k: int,
        num_inference_steps: int,
        seeds: Sequence[Sequence[int]] | None = None,
        base_seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> list[list[GeneratedImage]]:
        """``k`` images per prompt; ``seeds[i][j]`` if given, else ``candidate_seed(base_seed, i, j)``."""
        ...


# --- pixels ↔ PNG -------------------------------------------------------------------------------------------------


def tensor_to_png(image: torch.Tensor) -> bytes:
    """(C, H, W) in [-1, 1], C = 1 or 3 → PNG bytes (values clamped, rounded to 8 bits)."""
    pixels = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)  # (H, W) or (H, W, 3)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png_to_tensor(png: bytes, *, channels: int, size: int | None = None) -> torch.Tensor:
    """PNG bytes → (C, H, W) float32 in [-1, 1]; converted to grayscale or RGB, resized (bilinear) to ``size``."""
    image = Image.open(io.BytesIO(png)).convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array)
    return tensor[None] if channels == 1 else tensor.permute(2, 0, 1)  # (H, W, 3) → (3, H, W)


def _candidate_jobs(
    prompts: Sequence[str], k: int, seeds: Sequence[Sequence[int]] | None, base_seed: int
) -> list[tuple[int, int, int]]:
    """(prompt index, candidate index, seed) for every image, prompt-major."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if seeds is not None and (len(seeds) != len(prompts) or any(len(row) != k for row in seeds)):
        raise ValueError("seeds must give k seeds for every prompt")
    return [
        (i, j, seeds[i][j] if seeds is not None else candidate_seed(base_seed, i, j))
        for i in range(len(prompts))
        for j in range(k)
    ]


# --- class-conditional: UNet2DModel + our DDIM loop ---------------------------------------------------------------


def build_class_conditional_unet(
    *,
    size: int,
    channels: int = 1,
    num_classes: int = 10,
    block_out_channels: Sequence[int] = (32, 64, 64),
    layers_per_block: int = 1,
    norm_num_groups: int = 8,
    attention_head_dim: int = 8,
):
    """A small ``UNet2DModel`` whose class embedding (``nn.Embedding(num_classes, 4 · block_out_channels[0])``) is
    added to the timestep embedding; attention only in the lowest-resolution blocks (cheap at 16×16)."""
    from diffusers import UNet2DModel

    levels = len(block_out_channels)
    down = ("DownBlock2D",) * (levels - 1) + ("AttnDownBlock2D",)
    up = ("AttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1)
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups,
        attention_head_dim=attention_head_dim,
        class_embed_type=None,
        num_class_embeds=num_classes,
    )


def save_class_conditional_generator(
    path: str | os.PathLike, *, unet, scheduler, prompts: Sequence[str], extra: dict | None = None
) -> Path:
    """Write ``unet/``, ``scheduler/`` and ``tandem_generator.json`` (prompt i ↔ class i) atomically; return the path.

    ``scheduler`` is the training noise schedule (a ``DDPMScheduler``); sampling builds a DDIM scheduler from its
    config, so the two always share betas and the number of training timesteps.
    """
    if len(prompts) != unet.config.num_class_embeds:
        raise ValueError(f"{len(prompts)} prompts for a UNet with {unet.config.num_class_embeds} classes")
    with atomic_directory(path) as staging:
        unet.save_pretrained(staging / "unet")
        scheduler.save_pretrained(staging / "scheduler")
        (staging / MANIFEST).write_text(json.dumps(_manifest(unet, prompts, extra), indent=2) + "\n")
    return Path(path)


def _manifest(unet, prompts: Sequence[str], extra: dict | None) -> dict:
    import diffusers

    return {
        "kind": CLASS_CONDITIONAL,
        "prompts": {prompt: label for label, prompt in enumerate(prompts)},
        "image_channels": unet.config.in_channels,
        "image_size": unet.config.sample_size,
        "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__},
        "extra": extra or {},
    }


class ClassConditionalGenerator:
    """Samples a class-conditional ``UNet2DModel`` with DDIM (Song et al. 2021), one generator per image."""

    kind = CLASS_CONDITIONAL

    def __init__(self, unet, scheduler_config: dict, prompts: dict[str, int], *, eta: float = 0.0, batch_size=64):
        self.unet = unet.eval()
        self.scheduler_config = dict(scheduler_config)
        self.prompts = dict(prompts)
        self.eta = eta
        """DDIM's η: 0 is deterministic given x_T; 1 adds DDPM-like noise at each step (from the image's generator)."""
        self.batch_size = batch_size

    def class_labels(self, prompts: Sequence[str]) -> list[int]:
        unknown = [p for p in prompts if p not in self.prompts]
        if unknown:
            raise ValueError(f"unknown prompt {unknown[0]!r}; this generator knows {sorted(self.prompts)}")
        return [self.prompts[p] for p in prompts]

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        k: int,
        num_inference_steps: int,
        seeds: Sequence[Sequence[int]] | None = None,
        base_seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> list[list[GeneratedImage]]:
        from diffusers import DDIMScheduler

        labels = self.class_labels(prompts)
        jobs = _candidate_jobs(prompts, k, seeds, base_seed)
        config = self.unet.config
        shape = (config.in_channels, config.sample_size, config.sample_size)
        device = self.unet.device
        results: list[list[GeneratedImage | None]] = [[None] * k for _ in prompts]
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            # CPU generators on every device: the same seed gives the same x_T on CPU and GPU.
            generators = [torch.Generator().manual_seed(seed) for _, _, seed in batch]
            scheduler = DDIMScheduler.from_config(self.scheduler_config)
            scheduler.set_timesteps(num_inference_steps)
            x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)  # (B, C, H, W)
            x = x * scheduler.init_noise_sigma
            class_labels = torch.tensor([labels[i] for i, _, _ in batch], device=device)  # (B,)
            for t in scheduler.timesteps:
                eps = self.unet(x, t, class_labels=class_labels).sample  # (B, C, H, W)
                noise = None
                if self.eta > 0:  # each image's step noise from its own generator, in a fixed order
                    noise = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
                x = scheduler.step(eps, t, x, eta=self.eta, variance_noise=noise).prev_sample
            for (i, j, seed), image in zip(batch, x, strict=True):
                results[i][j] = GeneratedImage(i, tensor_to_png(image), seed, shape[2], shape[1])
            if progress is not None:
                progress(start + len(batch), len(jobs))
        return results  # type: ignore[return-value]


# --- text-to-image: a diffusers pipeline folder ------------------------------------------------------------------


class TextToImageGenerator:
    """A ``StableDiffusionPipeline``-class pipeline: prompts batched, ``num_images_per_prompt=k``, a generator per
    image (the list is prompt-major, the order in which the pipeline repeats prompt embeddings)."""

    kind = TEXT_TO_IMAGE

    def __init__(self, pipeline, *, guidance_scale: float = 7.5, batch_size: int = 8):
        self.pipeline = pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        self.guidance_scale = guidance_scale
        self.batch_size = batch_size
        """Images per pipeline call, rounded to whole prompts (at least one prompt's k images)."""

    def generate(
        self,
        prompts: Sequence[str],
        *,
        k: int,
        num_inference_steps: int,
        seeds: Sequence[Sequence[int]] | None = None,
        base_seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> list[list[GeneratedImage]]:
        jobs = _candidate_jobs(prompts, k, seeds, base_seed)
        per_call = max(1, self.batch_size // k)  # prompts per call
        results: list[list[GeneratedImage]] = []
        for start in range(0, len(prompts), per_call):
            batch_prompts = list(prompts[start : start + per_call])
            batch_jobs = jobs[start * k : (start + len(batch_prompts)) * k]
            generators = [torch.Generator().manual_seed(seed) for _, _, seed in batch_jobs]
            images = self.pipeline(
                prompt=batch_prompts,
                num_images_per_prompt=k,
                num_inference_steps=num_inference_steps,
                guidance_scale=self.guidance_scale,
                generator=generators,
                output_type="pil",
            ).images
            for offset in range(len(batch_prompts)):
                row = []
                for (i, _, seed), image in zip(
                    batch_jobs[offset * k : (offset + 1) * k], images[offset * k : (offset + 1) * k], strict=True
                ):
                    buffer = io.BytesIO()
                    image.save(buffer, format="PNG")
                    row.append(GeneratedImage(i, buffer.getvalue(), seed, image.width, image.height))
                results.append(row)
            if progress is not None:
                progress(len(results) * k, len(jobs))
        return results


# --- loading ------------------------------------------------------------------------------------------------------


def generator_kind(path: str | os.PathLike) -> str:
    """``"class-conditional"`` if the folder has ``tandem_generator.json``, ``"text-to-image"`` if it has a
    diffusers ``model_index.json``; anything else is a ``ValueError``."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return json.loads((path / MANIFEST).read_text())["kind"]
    if (path / "model_index.json").is_file():
        return TEXT_TO_IMAGE
    raise ValueError(f"{path} is not an image generator: no {MANIFEST} and no model_index.json")


def load_image_generator(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    batch_size: int | None = None,
    guidance_scale: float = 7.5,
) -> ClassConditionalGenerator | TextToImageGenerator:
    """The generator saved in ``path`` (see :func:`generator_kind`), on ``device``; ``guidance_scale`` is
    classifier-free guidance for text-to-image only."""
    path = Path(path)
    kind = generator_kind(path)
    if kind == CLASS_CONDITIONAL:
        from diffusers import DDPMScheduler, UNet2DModel

        manifest = json.loads((path / MANIFEST).read_text())
        unet = UNet2DModel.from_pretrained(path / "unet", dtype=dtype).to(device)
        scheduler_config = DDPMScheduler.load_config(path / "scheduler")
        return ClassConditionalGenerator(unet, scheduler_config, manifest["prompts"], batch_size=batch_size or 64)
    if kind == TEXT_TO_IMAGE:
        from diffusers import DiffusionPipeline

        pipeline = DiffusionPipeline.from_pretrained(path, dtype=dtype).to(device)
        return TextToImageGenerator(pipeline, guidance_scale=guidance_scale, batch_size=batch_size or 8)
    raise ValueError(f"{path}: unknown generator kind {kind!r}")
