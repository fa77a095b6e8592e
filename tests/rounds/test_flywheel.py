"""The simulated flywheel on tiny models: simulated annotators answer through the queue's service functions by a
hidden preference, the scheduler starts policy rounds, and the policy's hidden-preference reward rises.

The hidden preference is simple on purpose (the share of answer words that are the marker word), so a 2-layer
model can learn it in three rounds on a CPU. The noise the gain is held against is measured here, over three seeds:
the larger of the spread of the round-0 measurement (same base policy, different sampling seeds) and the spread of
the final policies' scores.
"""

import io
import statistics

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Candidate, Comparison, Judgment, Split
from tests.factories import PromptFactory
from tests.training.synthetic import MARKER, marker_judgments
from training.flywheel import FlywheelConfig, flywheel_run
from training.ml.hidden_preference import KeywordPreference
from training.models import ModelKind, ModelVersion, Round, RoundTrigger

from .conftest import loop_settings

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

JUDGE = KeywordPreference(frozenset({MARKER}))


def flywheel_project(project_factory, backbone: str, policy: str):
    """A project with unjudged marker comparisons to start from, and eval prompts."""
    project = project_factory()
    project.training_settings = loop_settings(
        backbone,
        policy,
        prompts_per_round=12,
        push_active_pairs=8,
        eval_prompts=4,
        policy_max_steps=-1,
        policy_epochs=3,
        policy_learning_rate=5e-3,
    )
    project.save(update_fields=["training_settings"])
    for record in marker_judgments(24, seed=project.pk):
        prompt = PromptFactory(project=project, text=record.prompt_text)
        ids = [
            Candidate.objects.create(project=project, prompt=prompt, external_id=f"{prompt.pk}-{key}", text=text).pk
            for key, text in record.candidates.items()
        ]
        Comparison.objects.create(
            project=project, prompt=prompt, external_id=f"cmp-{prompt.pk}", candidate_ids=ids, wanted=1
        )
    for i in range(4):
        PromptFactory(project=project, split=Split.EVAL, text=f"q wa00{i} wa01{i}")
    return project


@pytest.fixture
def make_project(db):
    from tests.factories import ProjectFactory

    return ProjectFactory


def test_three_rounds_raise_the_hidden_preference_well_beyond_the_seed_noise(make_project, tiny_backbone, tiny_policy):
    runs = []
    for seed in range(3):
        project = flywheel_project(make_project, tiny_backbone, tiny_policy)
        config = FlywheelConfig(rounds=3, labels_per_round=24, annotators=2, noise=0.1, eval_samples=8, seed=seed)
        runs.append(flywheel_run(project=project, preference=JUDGE, config=config))

    start = [rows[0].hidden_reward for rows in runs]
    end = [rows[-1].hidden_reward for rows in runs]
    gains = [e - s for s, e in zip(start, end, strict=True)]
    # Seed noise, measured: the spread of the round-0 measurement (sampling only) and of the final policies
    # (sampling, labels, training). bench/README.md records the figures of one run.
    noise = max(statistics.stdev(start), statistics.stdev(end))
    assert all(g > 0 for g in gains), (start, end)
    assert statistics.fmean(gains) > 3 * noise, (gains, noise)

    rows = runs[0]
    assert [row.round for row in rows] == [0, 1, 2, 3]
    assert all(row.judgments > 0 and row.rm_accuracy is not None for row in rows[1:])
    assert set(rows[1].step_seconds) == {"reward", "generate", "score", "optimise", "evaluate", "push", "register"}
    scheduled = Round.objects.filter(pk__in=[row.round_id for row in rows[1:]])
    assert {(r.trigger, r.kind) for r in scheduled} == {(RoundTrigger.SCHEDULE, ModelKind.POLICY)}
    # Labels came through the queue's services: one judgment per annotator and comparison, rationale recorded.
    sim = Judgment.objects.filter(project=scheduled[0].project_id, annotator__username__startswith="sim-annotator-")
    assert sim.count() == sum(row.judgments for row in rows) and "hidden preference" in sim.first().rationale
    assert ModelVersion.objects.filter(kind=ModelKind.POLICY, is_active=True).count() == 3  # one per project


def test_the_command_prints_a_table_per_round(make_project, tiny_backbone, tiny_policy):
    # 20 labels a round: in round 2 more than the 12 comparisons round 1 pushed, and the scheduler counts only
    # those (the rest go to the 4 marker comparisons left): the next round must start all the same.
    project = flywheel_project(make_project, tiny_backbone, tiny_policy)
    out = io.StringIO()
    call_command(
        "flywheel",
        "--simulate",
        "--project",
        str(project.pk),
        "--rounds",
        "2",
        "--labels-per-round",
        "20",
        "--hidden-preference",
        f"keywords:{MARKER}",
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert "hidden preference keywords:great" in lines[0] and lines[1].split()[:4] == [
        "round",
        "judgments",
        "rm_acc",
        "hidden_reward",
    ]
    assert [line.split()[0] for line in lines[2:]] == ["0", "1", "2"]


def test_the_command_explains_a_missing_judge_or_policy(project, tiny_backbone):
    with pytest.raises(CommandError, match="hidden_preference_train"):
        call_command("flywheel", "--simulate", "--project", str(project.pk))
    project.training_settings = {"backbone": tiny_backbone}
    project.save()
    with pytest.raises(CommandError, match="name no policy"):
        call_command("flywheel", "--simulate", "--project", str(project.pk), "--hidden-preference", "keywords:x")
