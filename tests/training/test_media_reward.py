"""Image reward models on tiny backbones built in the test: a planted preference (brighter wins) is learned."""

import dataclasses
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("PIL")

import numpy as np
import torch
from transformers import AutoModel, CLIPModel

from training.ml.media_reward import (
    HEAD_FILE,
    MANIFEST,
    ImageLoadError,
    ImageRewardConfig,
    evaluate_image_reward_model,
    image_data_uri,
    load_image,
    load_image_reward_model,
    save_image_reward_model,
    train_image_reward_model,
)
from training.ml.pairs import build_preference_pairs
from training.ml.reward import pair_uncertainty

from .synthetic_images import brightness_judgments, build_tiny_clip, build_tiny_vit, noisy_image, png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    return build_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


@pytest.fixture(scope="module")
def bright_pairs():
    return build_preference_pairs(brightness_judgments(200, seed=0), eval_fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def trained_clip(tiny_clip, bright_pairs):
    config = ImageRewardConfig(backbone=tiny_clip, learning_rate=1e-3, num_epochs=4, batch_size=16, ensemble_size=2)
    calls = []
    model = train_image_reward_model(bright_pairs, config, progress=lambda *args: calls.append(args))
    return model, calls


def test_clip_learns_that_brighter_images_win(trained_clip, bright_pairs, tiny_clip):
    model, calls = trained_clip
    metrics = evaluate_image_reward_model(model, bright_pairs.eval)
    assert metrics["n_pairs"] == len(bright_pairs.eval) > 40
    assert metrics["accuracy"] >= 0.9 and metrics["member_accuracy"] >= 0.9
    assert metrics["members"] == 2
    # The planted cue is brightness itself: the baseline is perfect, and the model follows it.
    assert metrics["data_brighter_chosen_rate"] == 1.0 and metrics["prefers_brighter_rate"] >= 0.9
    assert metrics["reward_brightness_corr"] > 0.5
    assert "reward_length_corr" not in metrics and "prefers_longer_rate" not in metrics
    # Progress counts every member's steps; the backbone (not only the head) was trained.
    steps, total, loss = calls[-1]
    assert steps == total == len(calls) and loss < calls[0][2]
    before = CLIPModel.from_pretrained(tiny_clip).vision_model.embeddings.patch_embedding.weight
    assert not torch.allclose(model.members[0].backbone.vision_model.embeddings.patch_embedding.weight, before)


def test_an_image_only_backbone_learns_that_brighter_images_win(tiny_vit, bright_pairs):
    config = ImageRewardConfig(backbone=tiny_vit, learning_rate=1e-3, num_epochs=3, batch_size=16)
    model = train_image_reward_model(bright_pairs, config)
    assert model.tokenizer is None
    assert evaluate_image_reward_model(model, bright_pairs.eval)["accuracy"] >= 0.9
    # No text tower: the prompt does not change the reward.
    image = bright_pairs.eval[0].chosen
    scores = model.score(["cat", "a completely different prompt"], [image, image])
    assert scores.shape == (1, 2) and scores[0, 0] == scores[0, 1]


def test_swapping_chosen_and_rejected_flips_accuracy(trained_clip, bright_pairs):
    model, _ = trained_clip
    swapped = [
        dataclasses.replace(p, chosen=p.rejected, rejected=p.chosen, chosen_id=p.rejected_id, rejected_id=p.chosen_id)
        for p in bright_pairs.eval
    ]
    straight = evaluate_image_reward_model(model, bright_pairs.eval)
    flipped = evaluate_image_reward_model(model, swapped)
    assert flipped["accuracy"] == pytest.approx(1.0 - straight["accuracy"])
    assert flipped["data_brighter_chosen_rate"] == 0.0


def test_score_has_the_reward_model_contract(trained_clip, bright_pairs):
    """(M, N) per-member rewards, so pair_uncertainty and active selection work unchanged."""
    model, _ = trained_clip
    pairs = bright_pairs.eval[:5]
    chosen, rejected = model.score_pairs(pairs)
    assert chosen.shape == rejected.shape == (2, 5)
    alone = model.score([p.prompt for p in pairs], [p.chosen for p in pairs], batch_size=2)
    torch.testing.assert_close(alone, chosen)
    assert pair_uncertainty(chosen, rejected)["disagreement"].shape == (5,)


def test_save_then_load_gives_the_same_scores(trained_clip, bright_pairs, tmp_path):
    model, _ = trained_clip
    path = save_image_reward_model(model, tmp_path / "irm", extra={"round": 3})
    loaded = load_image_reward_model(path)
    pairs = bright_pairs.eval[:8]
    torch.testing.assert_close(loaded.score_pairs(pairs), model.score_pairs(pairs))
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["kind"] == "image_reward" and manifest["extra"] == {"round": 3}
    assert manifest["snapshot_id"] == bright_pairs.snapshot_id
    # Member 0's backbone loads with plain from_pretrained; member 1 has its own folder and head.
    assert isinstance(CLIPModel.from_pretrained(path), CLIPModel)
    assert (path / HEAD_FILE).exists() and (path / "members" / "1" / HEAD_FILE).exists()
    with pytest.raises(FileExistsError):
        save_image_reward_model(model, path)


def test_a_frozen_backbone_trains_the_head_only_and_is_saved_once(tiny_vit, bright_pairs, tmp_path):
    config = ImageRewardConfig(
        backbone=tiny_vit, learning_rate=1e-2, max_steps=5, batch_size=8, ensemble_size=2, freeze_backbone=True
    )
    model = train_image_reward_model(bright_pairs, config)
    original = AutoModel.from_pretrained(tiny_vit).state_dict()
    for name, value in model.members[1].backbone.state_dict().items():
        torch.testing.assert_close(value, original[name])
    assert model.members[0].backbone is model.members[1].backbone
    path = save_image_reward_model(model, tmp_path / "frozen")
    assert not (path / "members" / "1" / "model.safetensors").exists()
    loaded = load_image_reward_model(path)
    assert loaded.members[0].backbone is loaded.members[1].backbone
    torch.testing.assert_close(loaded.score_pairs(bright_pairs.eval[:4]), model.score_pairs(bright_pairs.eval[:4]))


def test_lora_training_saves_a_plain_backbone(tiny_clip, bright_pairs, tmp_path):
    pytest.importorskip("peft")
    config = ImageRewardConfig(backbone=tiny_clip, learning_rate=1e-2, max_steps=3, batch_size=8, lora_r=4)
    model = train_image_reward_model(bright_pairs, config)
    path = save_image_reward_model(model, tmp_path / "lora")
    plain = CLIPModel.from_pretrained(path)
    assert not any("lora" in name for name, _ in plain.named_parameters())
    torch.testing.assert_close(
        load_image_reward_model(path).score_pairs(bright_pairs.eval[:4]), model.score_pairs(bright_pairs.eval[:4])
    )


def test_a_corrupt_image_names_its_pair(tiny_vit, bright_pairs):
    broken = image_data_uri(png(np.zeros((4, 4, 3)))[:30])  # a truncated PNG
    judgments = brightness_judgments(6, seed=1)
    bad = judgments[4]
    judgments[4] = dataclasses.replace(bad, candidates={**bad.candidates, f"{bad.judgment_id}-b": broken})
    pairs = build_preference_pairs(judgments, eval_fraction=0.0)
    config = ImageRewardConfig(backbone=tiny_vit, max_steps=1, batch_size=4)
    with pytest.raises(ImageLoadError, match=r"pair 4 \(comparison 4, prompt 4, rejected candidate 4-b\)"):
        train_image_reward_model(pairs, config)

    model = train_image_reward_model(bright_pairs, config)
    with pytest.raises(ImageLoadError, match="pair 4 "):
        evaluate_image_reward_model(model, pairs.train)
    with pytest.raises(ImageLoadError, match=r"image 1: cannot read image .*missing\.png"):
        model.score(["a", "b"], [pairs.train[0].chosen, "/nonexistent/missing.png"])


def test_every_image_reference_decodes_to_the_same_pixels(tmp_path):
    data = noisy_image(np.random.default_rng(0), 0.5)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    references = [data, image_data_uri(data), str(path), f"file://{path}", path]
    arrays = [np.asarray(load_image(r)) for r in references]
    for array in arrays[1:]:
        np.testing.assert_array_equal(array, arrays[0])
    assert load_image(image_data_uri(data)).mode == "RGB"


def test_an_empty_eval_split_gives_empty_metrics(trained_clip):
    model, _ = trained_clip
    metrics = evaluate_image_reward_model(model, [])
    assert metrics["n_pairs"] == 0 and metrics["accuracy"] is None and metrics["prefers_brighter_rate"] is None
