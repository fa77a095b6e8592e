"""Tiny diffusion models built from configs for the image tests: no download, seconds to build and run."""

from __future__ import annotations

from pathlib import Path

DIGIT_PROMPTS = [f"a handwritten {d}" for d in range(10)]


def build_tiny_class_unet(*, size: int = 8, seed: int = 0):
    """A class-conditional UNet2DModel with 8/16 channels (≈ 40k parameters), 1 image channel, 10 classes."""
    import torch

    from training.ml.generation.diffusion import build_class_conditional_unet

    torch.manual_seed(seed)
    return build_class_conditional_unet(size=size, block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4)


def build_tiny_class_conditional(folder: Path, *, seed: int = 0) -> Path:
    """Save a randomly initialised tiny class-conditional generator (8×8 grayscale, DDPM 100 steps) to ``folder``."""
    from diffusers import DDPMScheduler

    from training.ml.generation.diffusion import save_class_conditional_generator

    scheduler = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    return save_class_conditional_generator(
        folder, unet=build_tiny_class_unet(seed=seed), scheduler=scheduler, prompts=DIGIT_PROMPTS
    )


def build_tiny_text_to_image(folder: Path, *, words: list[str]) -> Path:
    """A StableDiffusionPipeline with a 2-level UNet2DConditionModel (4/8 channels), a 2-level AutoencoderKL, a
    2-layer CLIPTextModel and a word-level tokenizer, saved with ``save_pretrained``: 16×16 RGB images.

    The scheduler is DDPM so sampling adds noise at every step: reproducibility covers per-step noise too.
    """
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(words)], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>", model_max_length=8
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=8,
            pad_token_id=tok.token_to_id("[PAD]"),
            bos_token_id=tok.token_to_id("[PAD]"),  # CLIP's default (49406) is outside this vocabulary
            eos_token_id=tok.token_to_id("</s>"),
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(4, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(4, 8),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=2,
        layers_per_block=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDPMScheduler(
            num_train_timesteps=100, beta_schedule="scaled_linear", steps_offset=1, clip_sample=False
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return Path(folder)
