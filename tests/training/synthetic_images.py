"""Synthetic image preferences and tiny image backbones, built in-process (no downloads).

The planted preference: annotators prefer the brighter of two noisy 16×16 images.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from training.ml.media_reward import image_data_uri
from training.ml.pairs import JudgmentRecord

SIZE = 16
WORDS = ["cat", "dog", "tree", "house", "boat", "cloud", "lamp", "road"]
"""Prompt vocabulary of the tiny CLIP tokenizer."""


def png(array: np.ndarray) -> bytes:
    """(H, W, 3) floats in [0, 1] → PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def noisy_image(rng: np.random.Generator, level: float, *, tint: tuple[float, float, float] = (1, 1, 1)) -> bytes:
    """A textured image whose mean brightness is about ``level``; ``tint`` scales the channels."""
    texture = rng.normal(0.0, 0.12, size=(SIZE, SIZE, 1)) + rng.normal(0.0, 0.04, size=(SIZE, SIZE, 3))
    return png((level + texture) * np.array(tint))


def brightness_judgments(n: int, *, seed: int, start_id: int = 0, gap: float = 0.1) -> list[JudgmentRecord]:
    """``n`` pairwise judgments, one prompt each: the brighter image wins (gap ≥ ``gap``); winner left or right."""
    rng = np.random.default_rng(seed)
    order = random.Random(seed)
    records = []
    for k in range(start_id, start_id + n):
        low = rng.uniform(0.15, 0.85 - gap)
        high = rng.uniform(low + gap, 0.85)
        bright, dark = image_data_uri(noisy_image(rng, high)), image_data_uri(noisy_image(rng, low))
        candidates = {f"{k}-a": bright, f"{k}-b": dark}
        if order.random() < 0.5:
            candidates = dict(reversed(candidates.items()))
        prompt = f"{order.choice(WORDS)} {order.choice(WORDS)}"
        records.append(
            JudgmentRecord(
                judgment_id=k,
                comparison_id=k,
                prompt_id=k,
                prompt_text=prompt,
                candidates=candidates,
                winner=f"{k}-a",
            )
        )
    return records


def build_tiny_clip(folder: Path) -> str:
    """A 2-layer CLIP (hidden 32, 16×16 images in 4×4 patches, projection 16) and a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    special = ["<|startoftext|>", "<|endoftext|>", "[UNK]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(WORDS)], trainers.WordLevelTrainer(special_tokens=special))
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)]
    )
    # CLIP pads with its eos token; the text tower pools the first eos (eos_token_id != 2, the legacy value).
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": tok.get_vocab_size(),
            "max_position_embeddings": 16,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={**tower, "image_size": SIZE, "patch_size": 4},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # CLIP's own normalisation, written as JSON: CLIPImageProcessor warns without torchvision.
    processor = {"image_mean": [0.4815, 0.4578, 0.4082], "image_std": [0.2686, 0.2613, 0.2758]}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return str(folder)


def build_tiny_vit(folder: Path) -> str:
    """An image-only 2-layer ViT (hidden 32, 16×16 images in 4×4 patches), no tokenizer: the digits-demo shape."""
    import torch
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        patch_size=4,
    )
    torch.manual_seed(0)
    ViTModel(config).save_pretrained(folder)
    return str(folder)


def build_tiny_resnet(folder: Path) -> str:
    """An image-only ResNet (2 stages, 16/32 channels) for 16×16 digits; its config has no image size."""
    import torch
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic")
    torch.manual_seed(0)
    ResNetModel(config).save_pretrained(folder)
    return str(folder)
