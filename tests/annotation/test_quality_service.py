"""Label quality computed from judgments made through the real queue: figures, consensus, flags, exclusions."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from annotation.demo.simulated_annotators import ADVERSARIAL, ALWAYS_LEFT, RANDOM_CLICKER, honest, simulate_labelling
from annotation.models import AnnotatorQuality, ComparisonConsensus, Judgment, ProjectQuality, Role
from annotation.quality.exclusions import (
    ExclusionError,
    annotator_exclude,
    annotator_restore,
    training_weights,
)
from annotation.quality.service import quality_due, quality_recompute
from annotation.tasks import quality_refresh_task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_comparison


@pytest.fixture
def world(db):
    """8 annotators (5 honest, an adversary, an always-left, a random clicker) on 60 comparisons, 4 judgments each,
    plus 10 gold checks everyone answers."""
    project = ProjectFactory(overlap=4, gold_share=0.3, schema={"arity": 2, "allow_tie": True})
    behaviours = [honest(0.9)] * 5 + [ADVERSARIAL, ALWAYS_LEFT, RANDOM_CLICKER]
    people = {}
    for i, behaviour in enumerate(behaviours):
        user = UserFactory(username=f"{behaviour.name.split('(')[0]}{i}")
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        people[user.pk] = behaviour
    better = {}
    for i in range(60):
        comparison = make_comparison(project, texts=[f"a longer good answer {i}", f"bad {i}"])
        better[comparison.pk] = comparison.candidate_ids[0]
    for i in range(10):
        comparison = make_comparison(project, texts=[f"gold good {i}", f"gold bad {i}"], wanted=len(people))
        comparison.is_gold, comparison.gold_answer = True, {"winner": comparison.candidate_ids[0]}
        comparison.save()
        better[comparison.pk] = comparison.candidate_ids[0]
    simulate_labelling(project=project, annotators=people, better=better, seed=3)
    names = {pk: b.name for pk, b in people.items()}
    return project, names, better


def _by_name(project, names):
    return {names[q.annotator_id]: q for q in AnnotatorQuality.objects.filter(project=project)}


def test_recompute_stores_reliability_consensus_and_flags_each_bad_behaviour(world):
    project, names, better = world
    quality = quality_recompute(project_id=project.pk)
    assert quality.judgment_count == Judgment.objects.filter(project=project).count()
    stats = quality.statistics
    assert 0 < stats["choice"]["krippendorff_alpha"] < 1 and stats["choice"]["fleiss_kappa"] is not None
    usernames = dict(get_user_model().objects.values_list("pk", "username"))
    pairs = {frozenset(usernames[a] for a in p["annotators"]): p for p in stats["cohen_kappa_pairs"]}
    honest_pair, mixed_pair = pairs[frozenset(("honest0", "honest1"))], pairs[frozenset(("honest0", "adversarial5"))]
    # The better candidate is always stored first here, so kappa's chance correction is harsh; the order holds.
    assert mixed_pair["kappa"] < honest_pair["kappa"] and mixed_pair["agreement"] < 0.3 < 0.7 < honest_pair["agreement"]

    figures = _by_name(project, names)
    honest_people = [q for name, q in figures.items() if name.startswith("honest")]
    assert all(q.reliability > 0.75 and q.weight > 0.5 for q in honest_people)
    assert all(q.flags == [] for q in honest_people)
    assert figures["adversarial"].reliability < 0.2 and figures["adversarial"].weight == 0
    assert {f["code"] for f in figures["adversarial"].flags} >= {"disagrees_with_consensus", "fails_gold"}
    assert "always_left" in {f["code"] for f in figures["always_left"].flags}
    assert figures["always_left"].left_share == 1.0
    assert "too_fast" in {f["code"] for f in figures["random"].flags}
    # Gold accuracy: the honest are mostly right on the 10 gold checks, the adversary never.
    assert figures["adversarial"].gold_judged > 0 and figures["adversarial"].gold_correct == 0

    consensus = ComparisonConsensus.objects.filter(project=project)
    right = sum(c.winner_id == better[c.comparison_id] for c in consensus)
    assert right / consensus.count() > 0.9


def test_recompute_replaces_the_figures_instead_of_adding_to_them(world):
    project, _, _ = world
    quality_recompute(project_id=project.pk)
    quality_recompute(project_id=project.pk)
    assert AnnotatorQuality.objects.filter(project=project).count() == 8
    assert ProjectQuality.objects.filter(project=project).count() == 1


def test_the_beat_task_recomputes_only_after_enough_new_judgments(world, settings):
    project, _, _ = world
    settings.QUALITY_MIN_NEW_JUDGMENTS = 50
    assert quality_due(project_id=project.pk)
    quality_refresh_task()
    computed = ProjectQuality.objects.get(project=project).computed_at
    assert not quality_due(project_id=project.pk)
    quality_refresh_task()
    assert ProjectQuality.objects.get(project=project).computed_at == computed


def test_excluding_an_annotator_zeroes_their_weight_until_restored_and_is_logged(world, researcher):
    project, names, _ = world
    quality_recompute(project_id=project.pk)
    adversary = next(pk for pk, name in names.items() if name == "adversarial")
    honest_one = next(pk for pk, name in names.items() if name.startswith("honest"))

    annotator_exclude(project=project, annotator_id=honest_one, actor=researcher, reason="spot check")
    weights = training_weights(project_id=project.pk)
    assert weights["weights"][honest_one] == 0.0 and weights["excluded"] == [honest_one]
    assert weights["scheme"] == "reliability + exclusions"
    assert weights["weights"][adversary] == 0.0  # by its reliability, not an exclusion
    assert annotator_exclude(project=project, annotator_id=honest_one, actor=researcher).restored_at is None

    annotator_restore(project=project, annotator_id=honest_one, actor=researcher)
    weights = training_weights(project_id=project.pk)
    assert weights["weights"][honest_one] > 0.5 and weights["excluded"] == []
    messages = list(LogEntry.objects.filter(object_id=str(project.pk)).values_list("change_message", flat=True))
    assert sorted(messages) == [
        f"Excluded annotator {honest_one} from training: spot check",
        f"Restored annotator {honest_one} to training",
    ]
    with pytest.raises(ExclusionError, match="not excluded"):
        annotator_restore(project=project, annotator_id=honest_one, actor=researcher)


def test_an_outsider_cannot_be_excluded(world, researcher, outsider):
    project, _, _ = world
    with pytest.raises(ExclusionError, match="not a member"):
        annotator_exclude(project=project, annotator_id=outsider.pk, actor=researcher)


def test_weights_are_uniform_before_any_quality_computation(world):
    project, _, _ = world
    assert training_weights(project_id=project.pk) == {"weights": {}, "excluded": [], "scheme": "uniform"}


def test_without_overlap_or_gold_nobody_gets_a_reliability_or_a_weight(db):
    # Overlap 1 and no gold: the model has nothing to compare anyone with, so every label keeps weight 1.
    project = ProjectFactory(overlap=1, schema={"arity": 2, "allow_tie": True})
    people = {}
    for name in ("solo1", "solo2"):
        user = UserFactory(username=name)
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        people[user.pk] = honest(0.9)
    better = {}
    for i in range(30):
        comparison = make_comparison(project, texts=[f"good {i}", f"bad {i}"])
        better[comparison.pk] = comparison.candidate_ids[0]
    simulate_labelling(project=project, annotators=people, better=better)
    quality_recompute(project_id=project.pk)
    assert set(AnnotatorQuality.objects.filter(project=project).values_list("reliability", "weight")) == {(None, None)}
    assert training_weights(project_id=project.pk)["scheme"] == "uniform"
