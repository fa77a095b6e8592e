"""Image candidates: per-image seeds that reproduce an image in any batch, for both generator kinds."""

import pytest

pytest.importorskip("diffusers")

import torch

from training.ml.generation.diffusion import (
    CLASS_CONDITIONAL,
    TEXT_TO_IMAGE,
    GeneratedImage,
    generator_kind,
    load_image_generator,
    png_to_tensor,
)
from training.ml.generation.text import candidate_seed

from .synthetic_diffusion import DIGIT_PROMPTS, build_tiny_class_conditional, build_tiny_text_to_image

WORDS = "a red cat blue dog on the mat".split()


@pytest.fixture(scope="module")
def class_conditional(tmp_path_factory):
    return build_tiny_class_conditional(tmp_path_factory.mktemp("gen") / "digits")


@pytest.fixture(scope="module")
def text_to_image(tmp_path_factory):
    return build_tiny_text_to_image(tmp_path_factory.mktemp("t2i") / "pipe", words=WORDS)


def max_level_difference(a: GeneratedImage, b: GeneratedImage, channels: int) -> float:
    """Largest difference between two PNGs in 8-bit levels."""
    return float(
        (png_to_tensor(a.png, channels=channels) - png_to_tensor(b.png, channels=channels)).abs().max() * 127.5
    )


def assert_reproduced_alone(generator, prompts, batch, channels, steps):
    """Every image of ``batch`` comes back from its prompt and recorded seed alone. A batch of one can differ from a
    batch of six in a value's last float bits (CPU conv kernels depend on the batch), so a pixel on a rounding
    boundary may move by one 8-bit level; anything more would be a seed that does not own its image."""
    for i, row in enumerate(batch):
        for image in row:
            alone = generator.generate([prompts[i]], k=1, num_inference_steps=steps, seeds=[[image.seed]])[0][0]
            assert max_level_difference(alone, image, channels) <= 1.0


def test_the_folder_decides_the_generator_kind(class_conditional, text_to_image, tmp_path):
    assert generator_kind(class_conditional) == CLASS_CONDITIONAL
    assert generator_kind(text_to_image) == TEXT_TO_IMAGE
    with pytest.raises(ValueError, match="not an image generator"):
        generator_kind(tmp_path)


def test_class_conditional_images_reproduce_from_their_seed_alone_or_in_a_batch(class_conditional):
    generator = load_image_generator(class_conditional, batch_size=4)  # 6 images: batches of 4 and 2
    prompts = DIGIT_PROMPTS[:3]
    batch = generator.generate(prompts, k=2, num_inference_steps=8, base_seed=7)
    assert [[image.seed for image in row] for row in batch] == [
        [candidate_seed(7, i, j) for j in range(2)] for i in range(3)
    ]
    assert all(
        image.prompt_index == i and (image.width, image.height) == (8, 8)
        for i, row in enumerate(batch)
        for image in row
    )
    assert len({image.png for row in batch for image in row}) == 6
    assert_reproduced_alone(generator, prompts, batch, channels=1, steps=8)


def test_per_step_noise_comes_from_each_images_own_generator(class_conditional):
    generator = load_image_generator(class_conditional)
    deterministic = generator.generate(DIGIT_PROMPTS[:2], k=2, num_inference_steps=8)
    generator.eta = 1.0  # DDIM with DDPM-like noise at every step
    noisy = generator.generate(DIGIT_PROMPTS[:2], k=2, num_inference_steps=8)
    assert noisy[0][0].png != deterministic[0][0].png
    assert_reproduced_alone(generator, DIGIT_PROMPTS[:2], noisy, channels=1, steps=8)


def test_an_unknown_prompt_is_named_in_the_error(class_conditional):
    generator = load_image_generator(class_conditional)
    with pytest.raises(ValueError, match="'a handwritten cat'"):
        generator.generate(["a handwritten 1", "a handwritten cat"], k=1, num_inference_steps=2)


def test_seeds_must_cover_every_candidate(class_conditional):
    generator = load_image_generator(class_conditional)
    with pytest.raises(ValueError, match="k seeds for every prompt"):
        generator.generate(DIGIT_PROMPTS[:2], k=2, num_inference_steps=2, seeds=[[1, 2], [3]])


def test_text_to_image_gives_k_images_per_prompt_with_recorded_seeds(text_to_image):
    generator = load_image_generator(text_to_image, batch_size=4)  # k=2: two prompts per pipeline call
    prompts = ["a red cat", "a blue dog on the mat", "the cat"]
    reports = []
    batch = generator.generate(
        prompts,
        k=2,
        num_inference_steps=3,
        seeds=[[11, 12], [21, 22], [31, 32]],
        progress=lambda d, t: reports.append((d, t)),
    )
    assert [[image.seed for image in row] for row in batch] == [[11, 12], [21, 22], [31, 32]]
    assert all(
        image.prompt_index == i and (image.width, image.height) == (16, 16)
        for i, row in enumerate(batch)
        for image in row
    )
    assert reports == [(4, 6), (6, 6)]
    assert batch[0][0].png != batch[0][1].png
    # DDPM sampling adds noise at every step: the pipeline draws it from each image's generator too.
    assert_reproduced_alone(generator, prompts, batch, channels=3, steps=3)


def test_png_round_trip_keeps_8_bit_values():
    from training.ml.generation.diffusion import tensor_to_png

    image = torch.linspace(-1, 1, 3 * 4 * 4).reshape(3, 4, 4)
    back = png_to_tensor(tensor_to_png(image), channels=3)
    assert back.shape == (3, 4, 4)
    assert float((back - image).abs().max()) <= 1 / 127.5
