"""The offline image demo on tiny models: the project loads once with generated images an annotator can claim, the
digits classifier is the flywheel's hidden preference, and simulated annotators judge images by it."""

import io
import json
import random
import shutil

import pytest
from django.core.management import call_command

pytest.importorskip("diffusers")
pytest.importorskip("sklearn")

from annotation.models import Candidate, Comparison, Judgment, Modality, Prompt, Role, Split
from annotation.queue import comparison_claim
from annotation.schema import parse_schema
from tests.factories import UserFactory
from tests.training.synthetic_diffusion import build_tiny_class_conditional
from training.config import round_config_build
from training.digits_demo import (
    PROJECT_NAME,
    digits_classifier_for,
    digits_demo_folder,
    digits_demo_load,
    digits_demo_prepare,
)
from training.flywheel import FlywheelConfig, annotators_label, flywheel_run, simulated_annotators
from training.management.commands.flywheel import _default_judge
from training.ml.digits import DigitClassifierPreference, build_digits_reward_backbone, train_digit_classifier
from training.ml.hidden_preference import hidden_preference_from_spec

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Tiny stand-ins for the three cached artifacts, where ``digits_demo_prepare`` keeps them (8×8 images)."""
    models = tmp_path_factory.mktemp("models")
    folder = digits_demo_folder(models, size=8, epochs=1)
    build_tiny_class_conditional(folder / "generator")
    train_digit_classifier(folder / "classifier", size=8, epochs=1)
    build_digits_reward_backbone(folder / "reward-backbone", size=8, hidden_sizes=(8, 16))
    return models


@pytest.fixture
def artifacts(models_dir):
    return digits_demo_prepare(models_dir=models_dir, size=8, epochs=1)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def people():
    return {role: UserFactory(username=f"demo-{role}") for role in (Role.ANNOTATOR, Role.RESEARCHER, Role.ADMIN)}


def load(artifacts, users):
    return digits_demo_load(artifacts=artifacts, owner=users[Role.ADMIN], users=[(u, r) for r, u in users.items()])


def test_prepare_reuses_the_cached_models(artifacts, models_dir):
    assert artifacts.trained_seconds == {}
    assert artifacts.generator.parent == artifacts.classifier.parent == digits_demo_folder(models_dir, size=8, epochs=1)


def test_prepare_builds_only_what_is_missing(models_dir, tmp_path):
    # The generator and classifier are found (copied from the cache); only the reward backbone is built.
    cached = digits_demo_folder(models_dir, size=8, epochs=1)
    folder = digits_demo_folder(tmp_path, size=8, epochs=1)
    for name in ("generator", "classifier"):
        shutil.copytree(cached / name, folder / name)

    prepared = digits_demo_prepare(models_dir=tmp_path, size=8, epochs=1)

    assert set(prepared.trained_seconds) == {"reward-backbone"}
    assert (prepared.reward_backbone / "config.json").is_file()


def test_the_demo_loads_an_image_project_whose_generated_digits_an_annotator_can_claim(artifacts):
    users = people()
    project = load(artifacts, users)

    assert (project.name, project.modality) == (PROJECT_NAME, Modality.IMAGE)
    schema = parse_schema(project.schema)
    assert schema.allow_tie and [c.key for c in schema.span_categories] == ["smudge"]
    assert "which is the clearer" in project.guidelines.lower()
    prompts = Prompt.objects.filter(project=project)
    assert sorted(prompts.filter(split=Split.TRAIN).values_list("text", flat=True)) == [
        f"a handwritten {d}" for d in range(10)
    ]
    assert prompts.filter(split=Split.EVAL).count() == 10
    comparisons = Comparison.objects.filter(project=project)
    assert comparisons.count() == 30 and {c.origin["purpose"] for c in comparisons} == {"seed"}
    candidate = Candidate.objects.filter(project=project).first()
    assert candidate.mime_type == "image/png" and candidate.origin["policy_version"] == 0
    with candidate.media.open("rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    # The settings are ones a round accepts: the backbone and policy folders lie under the allowed roots.
    config = round_config_build(project_settings=project.training_settings)
    assert (config.backbone, config.policy) == (str(artifacts.reward_backbone), str(artifacts.generator))

    claim = comparison_claim(project_id=project.pk, annotator_id=users[Role.ANNOTATOR].pk)
    assert claim is not None and comparisons.filter(pk=claim.comparison_id).exists()


def test_loading_twice_changes_nothing(artifacts):
    users = people()
    first = load(artifacts, users)

    def rows():
        return (
            list(Prompt.objects.order_by("pk").values_list("pk", "external_id")),
            list(Candidate.objects.order_by("pk").values_list("pk", "media")),
            list(Comparison.objects.order_by("pk").values_list("pk", "candidate_ids")),
        )

    before = rows()
    second = load(artifacts, users)

    assert second.pk == first.pk and rows() == before


def test_loading_with_other_demo_models_points_later_rounds_at_them(artifacts, models_dir):
    users = people()
    project = load(artifacts, users)
    images = list(Candidate.objects.order_by("pk").values_list("media", flat=True))
    full = digits_demo_folder(models_dir, size=8, epochs=60)
    for name in ("generator", "classifier", "reward-backbone"):
        shutil.copytree(artifacts.folder / name, full / name, dirs_exist_ok=True)

    load(digits_demo_prepare(models_dir=models_dir, size=8, epochs=60), users)

    project.refresh_from_db()
    assert project.training_settings["policy"] == str(full / "generator")
    assert project.training_settings["backbone"] == str(full / "reward-backbone")
    assert list(Candidate.objects.order_by("pk").values_list("media", flat=True)) == images


def test_a_classifier_folder_is_a_hidden_preference(artifacts):
    for spec in (f"digits-classifier:{artifacts.classifier}", str(artifacts.classifier)):
        assert isinstance(hidden_preference_from_spec(spec), DigitClassifierPreference)
    with pytest.raises(ValueError, match="No digits classifier"):
        hidden_preference_from_spec(f"digits-classifier:{artifacts.generator}")


def test_the_flywheel_judges_an_image_project_by_the_classifier_beside_its_generator(artifacts):
    project = load(artifacts, people())

    assert digits_classifier_for(project) == artifacts.classifier
    assert _default_judge(project) == f"digits-classifier:{artifacts.classifier}"


def test_simulated_annotators_pick_the_image_the_classifier_prefers(artifacts):
    project = load(artifacts, people())
    judge = DigitClassifierPreference(artifacts.classifier)
    annotators = simulated_annotators(project, 2)

    given = annotators_label(
        project, annotators, judge, config=FlywheelConfig(labels_per_round=12, noise=0.0), rng=random.Random(0)
    )

    judgments = Judgment.objects.filter(project=project).select_related("comparison__prompt")
    assert given == judgments.count() == 12
    for judgment in judgments:
        a, b = judgment.comparison.candidate_ids
        images = {}
        for candidate in Candidate.objects.filter(pk__in=[a, b]):
            with candidate.media.open("rb") as file:
                images[candidate.pk] = file.read()
        score_a, score_b = judge.score([judgment.comparison.prompt.text] * 2, [images[a], images[b]])
        if score_a == score_b:
            assert judgment.tie
        else:
            assert judgment.winner_id == (a if score_a > score_b else b)


@pytest.mark.slow
def test_the_flywheel_runs_image_rounds_on_the_demo_project(artifacts):
    project = load(artifacts, people())
    tiny = {"image_size": 8, "num_inference_steps": 3, "epochs": 1, "batch_size": 8, "prompts_per_round": 3}
    tiny |= {"candidates_per_prompt": 3, "eval_prompts": 2, "push_active_pairs": 2, "policy_max_steps": 2}
    project.training_settings = {**project.training_settings, **tiny, "policy_batch_size": 2}
    project.save(update_fields=["training_settings"])
    judge = DigitClassifierPreference(artifacts.classifier)
    # 8 labels: what one round's 2 active + 2 head-to-head comparisons take at overlap 2, so the scheduler counts
    # all of them before the second round.
    config = FlywheelConfig(rounds=2, labels_per_round=8, annotators=2, noise=0.0, eval_samples=2, eval_prompts=2)

    rows = flywheel_run(project=project, preference=judge, config=config)

    assert [row.round for row in rows] == [0, 1, 2]
    assert all(0.0 <= row.hidden_reward <= 1.0 for row in rows)
    assert [row.judgments for row in rows[1:]] == [8, 8] and rows[2].hidden_win_rate is not None
    assert set(rows[1].step_seconds) == {"reward", "generate", "score", "optimise", "evaluate", "push", "register"}
    # The second round's labels were the images the first round pushed, judged by the classifier.
    second = Judgment.objects.filter(project=project, comparison__origin__round=rows[1].round_id)
    assert second.count() == 8


@pytest.mark.slow
def test_the_flywheel_command_judges_an_image_project_by_its_digits_classifier(artifacts):
    project = load(artifacts, people())
    tiny = {"image_size": 8, "num_inference_steps": 2, "epochs": 1, "batch_size": 8, "prompts_per_round": 2}
    tiny |= {"candidates_per_prompt": 2, "eval_prompts": 1, "push_active_pairs": 1, "policy_max_steps": 1}
    out = io.StringIO()

    call_command(
        "flywheel",
        "--simulate",
        "--project",
        str(project.pk),
        "--rounds",
        "1",
        "--labels-per-round",
        "4",
        "--eval-samples",
        "1",
        "--config",
        json.dumps({**tiny, "policy_batch_size": 2}),
        stdout=out,
    )

    lines = out.getvalue().splitlines()
    assert f"hidden preference digit-classifier:{artifacts.classifier.name}" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["0", "1"]
