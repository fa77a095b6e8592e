"""Image rounds on tiny models, in-process on the real database and media storage: the reward model sees pixels,
the diffusion generator makes K images per prompt, Diffusion-DPO updates it, and the new images reach the queue as
stored media with their origin — through the same steps as text (the modality interface)."""

import numpy as np
import pytest

from annotation.candidates import GeneratedCandidate, GeneratedComparison, generated_comparisons_push
from annotation.models import Candidate, Comparison, Judgment, Membership, Modality, Role, Split
from tests.factories import ProjectFactory, PromptFactory, UserFactory
from tests.training.synthetic_diffusion import build_tiny_class_conditional
from tests.training.synthetic_images import build_tiny_resnet, noisy_image
from training import rounds
from training.ml.digits import DIGIT_PROMPTS
from training.ml.generation.diffusion import load_image_generator
from training.models import ModelKind, ModelVersion, RoundStatus
from training.registry import artifact_location

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

STEPS = ["reward", "generate", "score", "optimise", "evaluate", "push", "register"]


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    return str(build_tiny_class_conditional(tmp_path_factory.mktemp("tiny-digits") / "generator"))


@pytest.fixture(scope="session")
def tiny_image_backbone(tmp_path_factory):
    return build_tiny_resnet(tmp_path_factory.mktemp("tiny-resnet"))


@pytest.fixture
def image_project(settings, tmp_path, tiny_generator, tiny_image_backbone):
    """Digit prompts, and 16 judged comparisons of imported images in which the brighter one won."""
    settings.MEDIA_ROOT = tmp_path / "media"
    project = ProjectFactory(modality=Modality.IMAGE, schema={"arity": 2, "allow_tie": True, "rationale": "off"})
    project.training_settings = {
        "backbone": tiny_image_backbone,
        "policy": tiny_generator,
        "image_size": 16,
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 2e-3,
        # Ten distinct prompt texts: the split holds out whole texts (here digits 4 and 5, four of the 16 prompts).
        "eval_fraction": 0.5,
        "seed": 0,
        "prompts_per_round": 4,
        "candidates_per_prompt": 3,
        "num_inference_steps": 4,
        "eval_prompts": 2,
        "push_active_pairs": 2,
        "policy_max_steps": 2,
        "policy_batch_size": 2,
        "generation_batch_size": 8,
    }
    project.save()
    annotator = UserFactory(username="labeller")
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    rng = np.random.default_rng(0)
    prompts = [PromptFactory(project=project, text=DIGIT_PROMPTS[i % 10]) for i in range(16)]
    for i in range(2):
        PromptFactory(project=project, text=DIGIT_PROMPTS[i], split=Split.EVAL)
    pushed = generated_comparisons_push(
        project=project,
        batch="seed",
        comparisons=[
            GeneratedComparison(
                prompt_id=prompt.pk,
                candidates=[
                    GeneratedCandidate(text="", media=noisy_image(rng, level), origin={"purpose": "seed"})
                    for level in (0.75, 0.25)
                ],
                priority=0,
                origin={"purpose": "seed"},
            )
            for prompt in prompts
        ],
    )
    for comparison in Comparison.objects.filter(pk__in=pushed.comparison_ids):
        Judgment.objects.create(
            project=project,
            comparison=comparison,
            annotator=annotator,
            winner_id=comparison.candidate_ids[0],  # the brighter image
            idempotency_key=f"k-{comparison.pk}",
            shown_order=comparison.candidate_ids,
        )
    Comparison.objects.filter(pk__in=pushed.comparison_ids).update(judged=1, status="done")
    return project


def test_an_image_round_trains_a_pixel_reward_model_runs_diffusion_dpo_and_pushes_stored_images(image_project, api):
    done = rounds.round_run(round_id=rounds.round_start(project=image_project, enqueue=False).pk)

    assert done.status == RoundStatus.SUCCEEDED, done.error
    assert [(s["name"], s["status"]) for s in done.steps] == [(name, "succeeded") for name in STEPS]
    reward = ModelVersion.objects.get(project=image_project, kind=ModelKind.REWARD)
    assert (artifact_location(reward) / "tandem_image_reward.json").exists()
    assert done.metrics["eval"]["n_pairs"] > 0 and "prefers_brighter_rate" in done.metrics["eval"]
    policy = done.model_version
    assert (policy.kind, policy.version, policy.is_active) == (ModelKind.POLICY, 1, True)
    assert done.metrics["policy"]["n"] == 2 and "kl_to_reference" not in done.metrics["policy"]
    # The registered generator loads and generates like the one it started from.
    [[image]] = load_image_generator(artifact_location(policy)).generate([DIGIT_PROMPTS[3]], k=1, num_inference_steps=2)
    assert image.png.startswith(b"\x89PNG")
    researcher = UserFactory(username="rita")
    Membership.objects.create(project=image_project, user=researcher, role=Role.RESEARCHER)
    sampled = api.as_user(researcher).post(
        f"/api/v1/model-versions/{policy.pk}/sample/", {"prompt": "a"}, format="json"
    )
    assert sampled.status_code == 409 and "built for text policies" in sampled.json()["message"]

    pushed = Comparison.objects.filter(project=image_project, origin__round=done.pk)
    assert sorted(c.origin["purpose"] for c in pushed) == ["active"] * 2 + ["policy_vs_previous"] * 2
    generated = Candidate.objects.filter(origin__round=done.pk)
    assert generated.count() == 8
    for candidate in generated:
        assert candidate.mime_type == "image/png" and candidate.media.name and candidate.text == ""
        assert candidate.media.open("rb").read(4) == b"\x89PNG"
        assert candidate.origin["sampling"] == {"num_inference_steps": 4} and isinstance(candidate.origin["seed"], int)


def test_images_refuse_rloo_with_a_reason(image_project):
    image_project.training_settings = {**image_project.training_settings, "policy_algorithm": "rloo"}
    image_project.save()
    done = rounds.round_run(round_id=rounds.round_start(project=image_project, enqueue=False).pk)
    assert done.status == RoundStatus.FAILED and "Diffusion-DPO" in done.error
    assert not Comparison.objects.filter(origin__round=done.pk).exists()


def test_a_stable_diffusion_class_pipeline_and_a_clip_reward_model_run_the_same_steps(image_project, tmp_path_factory):
    """Production's shape on tiny parts: a text-to-image pipeline by folder (as a hub id's cache folder would be)
    and an image–text (CLIP-class) reward model."""
    from tests.training.synthetic_diffusion import build_tiny_text_to_image
    from tests.training.synthetic_images import WORDS, build_tiny_clip

    folder = tmp_path_factory.mktemp("tiny-sd")
    pipeline = str(build_tiny_text_to_image(folder / "pipeline", words=[*WORDS, "a", "handwritten", *"0123456789"]))
    clip = build_tiny_clip(folder / "clip")
    image_project.training_settings = {
        **image_project.training_settings,
        "backbone": clip,
        "policy": pipeline,
        "image_size": None,
    }
    image_project.save()
    done = rounds.round_run(round_id=rounds.round_start(project=image_project, enqueue=False).pk)

    assert done.status == RoundStatus.SUCCEEDED, done.error
    [[image]] = load_image_generator(artifact_location(done.model_version)).generate(
        ["a handwritten 7"], k=1, num_inference_steps=2
    )
    assert (image.width, image.height) == (16, 16)
    assert Candidate.objects.filter(origin__round=done.pk, mime_type="image/png").count() == 8


@pytest.mark.django_db(transaction=True)
def test_an_image_round_on_the_gpu_worker_pushes_images_an_annotator_judges(gpu_worker, api, image_project):
    from .test_worker import finished, wait_for

    admin = UserFactory(username="adam")
    Membership.objects.create(project=image_project, user=admin, role=Role.ADMIN)
    response = api.as_user(admin).post(f"/api/v1/projects/{image_project.pk}/rounds/", {}, format="json")
    assert response.status_code == 201, response.json()
    done = wait_for(response.json()["id"], finished, timeout=180)
    assert done.status == RoundStatus.SUCCEEDED, done.error

    annotator = UserFactory(username="anna")
    Membership.objects.create(project=image_project, user=annotator, role=Role.ANNOTATOR)
    task = api.as_user(annotator).get(f"/api/v1/projects/{image_project.pk}/next/").json()
    served = Comparison.objects.get(pk=task["comparison"])
    assert served.origin["round"] == done.pk
    assert all(c["media_url"] for c in task["candidates"])
    answer = {"winner": served.candidate_ids[1], "shown_order": served.candidate_ids}
    submitted = api.as_user(annotator).post(
        f"/api/v1/comparisons/{served.pk}/judgments/", answer, format="json", HTTP_IDEMPOTENCY_KEY="img-1"
    )
    assert submitted.status_code == 201, submitted.json()
