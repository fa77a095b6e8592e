"""Images on the modality interface: a diffusers generator (the class-conditional digits UNet, or a Stable
Diffusion-class text-to-image pipeline, by folder: ``generation.diffusion``), Diffusion-DPO on its UNet with LoRA
(``diffusion_dpo``), and a reward model that sees pixels (``media_reward``).

Settings read from the round (``training.config.RoundConfig``): the reward model's ``image_size``,
``learning_rate``, ``epochs``, ``max_steps``, ``batch_size``, ``ensemble_size``, ``lora_r``;
``num_inference_steps``, ``generation_batch_size``; ``policy_algorithm`` (only ``dpo``), ``diffusion_beta``,
``policy_learning_rate``, ``policy_epochs``, ``policy_max_steps``, ``policy_batch_size``, ``policy_lora_r``.

Diffusion-DPO's reference is always the starting generator (its UNet with the adapter off): a ``base`` reference
other than the starting point is not built for images. The evaluation has no KL term (a diffusion model's
likelihood is not a sum of token log-probabilities); the reward model's win rate carries it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path

from . import Evaluation, Output, OutputPair, Trained


class ImageModality:
    name = "image"
    span_rewards = False

    def sampling(self, settings) -> dict:
        return {"num_inference_steps": settings["num_inference_steps"]}

    def generate(self, path, prompts, *, k, sampling, base_seed, batch_size, progress=None):
        from ..generation.diffusion import load_image_generator

        generator = load_image_generator(path, batch_size=batch_size)
        rows = generator.generate(
            list(prompts),
            k=k,
            num_inference_steps=sampling["num_inference_steps"],
            base_seed=base_seed,
            progress=progress,
        )
        return [[_output(image, sampling) for image in row] for row in rows]

    def human_pairs(self, pairs: Sequence) -> list[OutputPair]:
        return [
            OutputPair(
                prompt=p.prompt,
                chosen=Output(prompt_index=-1, seed=0, media=image_bytes(p.chosen), mime_type="image/png"),
                rejected=Output(prompt_index=-1, seed=0, media=image_bytes(p.rejected), mime_type="image/png"),
                source="human",
            )
            for p in pairs
        ]

    def optimise(self, *, start, reference, pairs, prompts, reward_score, settings, seed, progress) -> Trained:
        from ..diffusion_dpo import DiffusionDPOConfig, ImagePair, train_diffusion_dpo

        if settings["policy_algorithm"] != "dpo":
            raise ValueError("Image generators are optimised with Diffusion-DPO: set policy_algorithm to 'dpo'.")
        config = DiffusionDPOConfig(
            beta=settings["diffusion_beta"],
            learning_rate=settings["policy_learning_rate"],
            num_epochs=max(1, math.ceil(settings["policy_epochs"])),
            max_steps=settings["policy_max_steps"] if settings["policy_max_steps"] > 0 else None,
            batch_size=settings["policy_batch_size"],
            lora_r=settings["policy_lora_r"] or DiffusionDPOConfig.lora_r,
            seed=seed,
        )
        image_pairs = [ImagePair(p.prompt, p.chosen.media, p.rejected.media) for p in pairs]
        model = train_diffusion_dpo(start, image_pairs, config, progress=progress)
        return Trained(model=model, metrics=dict(model.metrics))

    def save(self, trained: Trained, path, *, extra: dict) -> None:
        from ..diffusion_dpo import save_diffusion_dpo

        save_diffusion_dpo(trained.model, path, extra=extra)

    def evaluate(self, *, new, previous, reference, prompts, reward_score, settings, base_seed, progress=None):
        from ..policy_eval import reward_comparison

        sampling = self.sampling(settings)
        batch = settings["generation_batch_size"]
        if progress is not None:
            progress("generating with the new generator", 0.05)
        new_rows = self.generate(new, prompts, k=1, sampling=sampling, base_seed=base_seed, batch_size=batch)
        if progress is not None:
            progress("generating with the previous generator", 0.4)
        old_rows = self.generate(previous, prompts, k=1, sampling=sampling, base_seed=base_seed, batch_size=batch)
        new_out, old_out = [row[0] for row in new_rows], [row[0] for row in old_rows]
        if progress is not None:
            progress("scoring", 0.75)
        metrics = reward_comparison(list(prompts), [o.media for o in new_out], [o.media for o in old_out], reward_score)
        return Evaluation(metrics=metrics, new=new_out, previous=old_out, sampling=sampling)

    def reward_train(self, pairs, *, backbone, settings, seed, progress):
        from ..media_reward import ImageRewardConfig, train_image_reward_model

        config = ImageRewardConfig(
            backbone=backbone,
            image_size=settings["image_size"],
            learning_rate=settings["learning_rate"],
            num_epochs=settings["epochs"],
            max_steps=settings["max_steps"],
            batch_size=settings["batch_size"],
            ensemble_size=settings["ensemble_size"],
            lora_r=settings["lora_r"],
            seed=seed,
        )
        return train_image_reward_model(pairs, config, progress=progress)

    def reward_evaluate(self, model, pairs) -> dict:
        from ..media_reward import evaluate_image_reward_model

        return evaluate_image_reward_model(model, pairs)

    def reward_save(self, model, path, *, extra: dict) -> None:
        from ..media_reward import save_image_reward_model

        save_image_reward_model(model, path, extra=extra)

    def reward_load(self, path):
        from ..media_reward import load_image_reward_model

        return load_image_reward_model(path)


def _output(image, sampling: dict) -> Output:
    return Output(
        prompt_index=image.prompt_index,
        seed=image.seed,
        media=image.png,
        mime_type="image/png",
        metadata={"width": image.width, "height": image.height, "steps": sampling["num_inference_steps"]},
    )


def image_bytes(reference: str) -> bytes:
    """The bytes behind an image reference as judgments carry it: a local path or a ``data:`` URI."""
    if reference.startswith("data:"):
        return base64.b64decode(reference.split(",", 1)[1])
    return Path(reference.removeprefix("file://")).read_bytes()
