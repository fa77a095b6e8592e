"""The offline digits demo: fixed halves, a generator folder from a tiny run, the classifier as hidden preference."""

import json

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("sklearn")

import torch

from training.ml.digits import (
    CLASSIFIER_MANIFEST,
    DIGIT_PROMPTS,
    DigitClassifierPreference,
    digit_images,
    digit_split,
    prompt_digit,
    train_digit_classifier,
    train_digits_generator,
)
from training.ml.generation.diffusion import MANIFEST, load_image_generator, tensor_to_png


def test_the_halves_are_disjoint_and_cover_every_digit():
    images, labels = digit_images(16)
    assert images.shape == (1797, 1, 16, 16) and images.min() >= -1 and images.max() <= 1
    split = digit_split(len(labels))
    parts = [set(split[name].tolist()) for name in ("generator", "classifier_train", "classifier_test")]
    assert sum(map(len, parts)) == len(labels) == len(set().union(*parts))
    assert [len(p) for p in parts] == [899, 449, 449]
    assert all(set(labels[split[name]].tolist()) == set(range(10)) for name in split)


def test_prompts_name_their_digit():
    assert [prompt_digit(p) for p in DIGIT_PROMPTS] == list(range(10))
    with pytest.raises(ValueError, match="'a handwritten cat'"):
        prompt_digit("a handwritten cat")


@pytest.mark.slow
def test_a_tiny_training_run_saves_a_loadable_generator(tmp_path):
    reports = []
    path = train_digits_generator(
        tmp_path / "gen",
        size=8,
        epochs=1,
        block_out_channels=(8, 16),
        num_train_timesteps=50,
        progress=lambda *r: reports.append(r),
    )
    assert [r[:2] for r in reports] == [(s, 15) for s in range(1, 16)]  # 899 images, batches of 64
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["prompts"]["a handwritten 7"] == 7 and manifest["extra"]["training"]["steps"] == 15
    rows = load_image_generator(path).generate(["a handwritten 3"], k=2, num_inference_steps=3)
    assert [(image.width, image.height) for image in rows[0]] == [(8, 8), (8, 8)]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return train_digit_classifier(tmp_path_factory.mktemp("clf") / "classifier", size=16, epochs=20)


@pytest.mark.slow
def test_the_classifier_beats_90_percent_on_its_held_out_digits(classifier):
    manifest = json.loads((classifier / CLASSIFIER_MANIFEST).read_text())
    assert manifest["test_accuracy"] > 0.9


@pytest.mark.slow
def test_the_preference_scores_the_prompted_digits_probability(classifier):
    judge = DigitClassifierPreference(classifier)
    images, labels = digit_images(16)
    test = digit_split(len(labels))["classifier_test"][:20]
    pngs = [tensor_to_png(images[i]) for i in test]
    right = judge.score([DIGIT_PROMPTS[labels[i]] for i in test], pngs)
    wrong = judge.score([DIGIT_PROMPTS[(labels[i] + 1) % 10] for i in test], pngs)
    assert all(0.0 <= s <= 1.0 for s in right + wrong)
    assert sum(right) / 20 > 0.8 > 0.1 > sum(wrong) / 20
    every_digit = judge.score(list(DIGIT_PROMPTS), [pngs[0]] * 10)
    assert sum(every_digit) == pytest.approx(1.0, abs=1e-5)  # one softmax over the ten digits
    assert judge.name == "digit-classifier:classifier" and judge.score([], []) == []


def test_the_preference_resizes_images_of_another_size(classifier):
    judge = DigitClassifierPreference(classifier)
    image = tensor_to_png(torch.zeros(1, 8, 8))
    assert len(judge.score(["a handwritten 0"], [image])) == 1
