"""The offline image demo, Django side: train the digits models once (``training.ml.digits``) and load an image
project that people, or the simulated flywheel, can judge and train on.

    python manage.py digits_demo          # bin/demo runs it after demo_load

Three artifacts, cached under ``VAR_DIR/models/digits-<size>px-<epochs>ep/`` (each written atomically, skipped
when it exists, so an interrupted run resumes with what is missing):

- ``generator/``: the class-conditional diffusion generator (the project's ``policy``);
- ``classifier/``: the digit classifier, the flywheel's hidden preference ("is this the digit asked for?");
- ``reward-backbone/``: a randomly initialised small ResNet, the backbone of the project's image reward model
  (nothing pretrained ships offline; the reward model learns from the judgments alone).

The folder name carries the size and epochs, so a short check-sized run never stands in for the full one.

Prompts: the generator knows exactly ten ("a handwritten 0" … "a handwritten 9"), so the project holds each twice:
ten in the train split (``digit-<d>``), which rounds generate for, and the same ten texts in the eval split
(``digit-<d>-eval``), on which every round compares the new generator with the previous one. The eval split then
measures the same task, with its own fixed seeds, rather than unseen prompts: there are no others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotation.candidates import GeneratedCandidate, GeneratedComparison, generated_comparisons_push
from annotation.management.commands.demo_load import DIGITS_PROJECT_NAME as PROJECT_NAME
from annotation.models import Candidate, Membership, Modality, Project, Prompt, Split

GENERATOR_EPOCHS = 60
"""The full run (``DigitsGeneratorConfig.epochs``): 900 steps, a few minutes on a CPU (bench/README.md)."""
SEED_BATCH = "digits-seed"
"""The ``batch`` key of the initial comparisons: their external ids derive from it, so loading twice adds none."""
SEED_IMAGES_PER_PROMPT = 6
"""Images generated per train prompt for the initial comparisons: disjoint pairs (0, 1), (2, 3), (4, 5)."""
SEED_INFERENCE_STEPS = 25
"""DDIM steps of the initial images (η = 0: an image is fixed by its seed); the rounds' ``num_inference_steps``
too, so people compare the seed images and the rounds' on equal terms."""

SCHEMA = {
    "arity": 2,
    "allow_tie": True,
    "strength": None,
    "criteria": [],
    # On an image a span is a box: mark the stroke that makes a digit hard to read.
    "span_categories": [{"key": "smudge", "label": "Smudge", "color": "#d62728"}],
    "rationale": "optional",
}
GUIDELINES = """\
# Handwritten digits

Each task shows two small images generated for the same prompt, such as **"a handwritten 7"**.

**Which is the clearer 7?** (Read the digit from the prompt.) Pick the image that a person would read as that
digit at a glance: the right shape, strokes connected where they should be, no stray blobs.

- **Tie** when both are equally clear, or equally unreadable.
- **Smudge**: draw a box around a stray mark or broken stroke that makes an image harder to read (optional).
- A short rationale helps when the choice is close (optional).
"""

ProgressFn = Callable[[str, int, int], None]
"""``progress(artifact, step, total)`` while an artifact trains."""


@dataclass(frozen=True)
class DigitsArtifacts:
    folder: Path
    generator: Path
    classifier: Path
    reward_backbone: Path
    size: int
    epochs: int
    trained_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds spent training each artifact in this call; those found in the cache are absent."""


def digits_demo_folder(models_dir: str | os.PathLike, *, size: int = 16, epochs: int = GENERATOR_EPOCHS) -> Path:
    return Path(models_dir) / f"digits-{size}px-{epochs}ep"


def digits_demo_prepare(
    *, models_dir: str | os.PathLike, size: int = 16, epochs: int | None = None, progress: ProgressFn | None = None
) -> DigitsArtifacts:
    """Train what is missing of the generator, the classifier and the reward backbone; return their folders."""
    from training.ml.digits import build_digits_reward_backbone, train_digit_classifier, train_digits_generator

    epochs = GENERATOR_EPOCHS if epochs is None else epochs
    folder = digits_demo_folder(models_dir, size=size, epochs=epochs)
    generator, classifier, backbone = folder / "generator", folder / "classifier", folder / "reward-backbone"
    seconds: dict[str, float] = {}

    def generator_progress(step: int, total: int, _loss: float) -> None:
        if progress is not None:
            progress("generator", step, total)

    builds = (
        (
            "generator",
            generator,
            lambda: train_digits_generator(generator, size=size, epochs=epochs, progress=generator_progress),
        ),
        ("classifier", classifier, lambda: train_digit_classifier(classifier, size=size)),
        ("reward-backbone", backbone, lambda: build_digits_reward_backbone(backbone, size=size)),
    )
    for name, path, build in builds:
        if path.is_dir():
            continue
        started = time.monotonic()
        try:
            build()
        except OSError:
            # Another process (a second `digits_demo`) renamed its copy into place first: that folder is complete.
            if not path.is_dir():
                raise
        seconds[name] = round(time.monotonic() - started, 1)
    return DigitsArtifacts(folder, generator, classifier, backbone, size, epochs, seconds)


def digits_demo_training_settings(artifacts: DigitsArtifacts) -> dict:
    """The project's round settings: the reward model on the demo's ResNet, Diffusion-DPO on the digits generator,
    sized so an image round takes minutes on a CPU.

    A round pushes one active pair per prompt and one head-to-head per eval prompt: 20 comparisons, 40 judgments
    at overlap 2, which the scheduler counts towards the next round.

    The Diffusion-DPO settings were chosen with ``bench/diffusion_dpo_bench.py`` (figures in bench/README.md): a
    wide gap between chosen and rejected (best-vs-worst of K = 64) matters most, and higher learning rates or more
    steps over-fit the round's 10 pairs."""
    return {
        "backbone": str(artifacts.reward_backbone),
        "image_size": artifacts.size,
        "epochs": 4,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "eval_fraction": 0.2,
        "policy": str(artifacts.generator),
        "num_inference_steps": SEED_INFERENCE_STEPS,
        "prompts_per_round": 10,
        "candidates_per_prompt": 64,
        "generation_batch_size": 64,
        "eval_prompts": 10,
        "push_active_pairs": 10,
        "policy_batch_size": 8,
        "policy_learning_rate": 1e-4,
        "policy_max_steps": 100,
        "diffusion_beta": 2000.0,
    }


def digits_demo_load(*, artifacts: DigitsArtifacts, owner, users: Sequence[tuple[object, str]]) -> Project:
    """Create (or find, by name) the image project with its members, prompts and initial comparisons.

    ``users`` are (user, role) pairs. Idempotent: a second call finds every row and generates nothing.
    """
    project = _project(artifacts, owner)
    for user, role in users:
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    _prompts(project)
    _seed_comparisons(project, artifacts)
    return project


def _project(artifacts: DigitsArtifacts, owner) -> Project:
    project = Project.objects.filter(name=PROJECT_NAME).order_by("pk").first()
    if project is None:
        project = Project.objects.create(
            name=PROJECT_NAME,
            modality=Modality.IMAGE,
            schema=SCHEMA,
            overlap=2,  # two judgments per pair, so agreement shows up in the stats
            guidelines=GUIDELINES,
            created_by=owner,
            training_settings=digits_demo_training_settings(artifacts),
        )
    elif _is_other_digits_generator(project.training_settings.get("policy"), artifacts):
        # Loaded before with other demo models (a check's 10-epoch generator, say): later rounds use these. The
        # images already in the queue stay; they are data (and may have judgments).
        models = {k: v for k, v in digits_demo_training_settings(artifacts).items() if k in ("backbone", "policy")}
        project.training_settings = {**project.training_settings, **models, "image_size": artifacts.size}
        project.save(update_fields=["training_settings"])
    return project


def _is_other_digits_generator(policy: str | None, artifacts: DigitsArtifacts) -> bool:
    """Whether ``policy`` is the generator folder of another ``digits_demo_prepare`` run than ``artifacts``'."""
    if not policy or Path(policy) == artifacts.generator:
        return False
    return Path(policy).name == "generator" and Path(policy).parent.name.startswith("digits-")


def _prompts(project: Project) -> None:
    from training.ml.digits import DIGIT_PROMPTS

    rows = [
        Prompt(project=project, external_id=f"digit-{digit}{suffix}", text=text, split=split, metadata={"digit": digit})
        for suffix, split in (("", Split.TRAIN), ("-eval", Split.EVAL))
        for digit, text in enumerate(DIGIT_PROMPTS)
    ]
    # The unique (project, external_id) constraint makes a second load a no-op, even beside a concurrent one.
    Prompt.objects.bulk_create(rows, ignore_conflicts=True)


def _seed_comparisons(project: Project, artifacts: DigitsArtifacts) -> None:
    """K images per train prompt from the base generator, in disjoint pairs, pushed like a round's comparisons."""
    from training.ml.generation.diffusion import load_image_generator

    prompts = list(Prompt.objects.filter(project=project, split=Split.TRAIN).order_by("pk").values_list("pk", "text"))
    pairs_per_prompt = SEED_IMAGES_PER_PROMPT // 2
    wanted = len(prompts) * SEED_IMAGES_PER_PROMPT
    if Candidate.objects.filter(project=project, external_id__startswith=f"gen-{SEED_BATCH}-").count() >= wanted:
        return  # loaded before: skip the generation (the push below would find every row anyway)
    generator = load_image_generator(artifacts.generator)
    rows = generator.generate(
        [text for _, text in prompts], k=SEED_IMAGES_PER_PROMPT, num_inference_steps=SEED_INFERENCE_STEPS, base_seed=0
    )
    sampling = {"num_inference_steps": SEED_INFERENCE_STEPS}  # as the image modality records a round's images
    origin = {"round": None, "purpose": "seed", "policy_version": 0, "sampling": sampling}
    comparisons = [
        GeneratedComparison(
            prompt_id=prompt_id,
            candidates=[
                GeneratedCandidate(text="", origin={**origin, "seed": image.seed}, media=image.png)
                for image in row[2 * pair : 2 * pair + 2]
            ],
            priority=0,
            origin={"round": None, "purpose": "seed"},
        )
        for (prompt_id, _), row in zip(prompts, rows, strict=True)
        for pair in range(pairs_per_prompt)
    ]
    generated_comparisons_push(project=project, batch=SEED_BATCH, comparisons=comparisons)


def digits_classifier_for(project: Project) -> Path | None:
    """The hidden-preference classifier trained beside the project's base generator, if the project's ``policy``
    is a digits-demo generator folder."""
    policy = (project.training_settings or {}).get("policy") or ""
    if not policy.startswith("/"):
        return None
    classifier = Path(policy).parent / "classifier"
    return classifier if classifier.is_dir() else None
