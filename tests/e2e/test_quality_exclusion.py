"""A researcher opens the label-quality table, sees an annotator flagged as one-sided, excludes them with one
click, and the next round's reward model trains without them — the rounds table says so."""

import pytest

from annotation.models import Candidate, Judgment, Membership, Role
from annotation.quality.service import quality_recompute
from training import rounds

from ..factories import UserFactory
from ..rounds.conftest import add_judgments, fast_settings
from ..training.synthetic import CUE, FILLER_A, FILLER_B, MARKER, build_tiny_backbone
from .conftest import shot, sign_in


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality-models")
    return root, build_tiny_backbone(root / "bert", words=[*FILLER_A, *FILLER_B, MARKER, CUE, "to"])


def _always_left_and_wrong(project, user, n):
    """``n`` judgments that always pick the candidate shown left — here always the worse one — in under a second."""
    for judgment in add_judgments(project, n, seed=9, start=500, annotator=user):
        loser = next(c for c in judgment.comparison.candidate_ids if c != judgment.winner_id)
        Judgment.objects.filter(pk=judgment.pk).update(
            winner=Candidate.objects.get(pk=loser),
            shown_order=[loser, judgment.winner_id],
            time_spent_ms=800,
        )


def test_a_researcher_excludes_a_flagged_annotator_and_the_next_round_names_the_exclusion(
    page, people, tiny_backbone, settings, tmp_path
):
    project, users = people
    root, backbone = tiny_backbone
    settings.TRAINING_ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.TRAINING_BACKBONE_ROOTS = [root]
    project.training_settings = fast_settings(backbone, annotator_weighting="uniform")
    project.save(update_fields=["training_settings"])
    add_judgments(project, 24, annotator=users["anna"])
    lefty = UserFactory(username="lefty")
    Membership.objects.create(project=project, user=lefty, role=Role.ANNOTATOR)
    _always_left_and_wrong(project, lefty, 20)
    quality_recompute(project_id=project.pk)

    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    row = page.get_by_test_id("quality-lefty")
    row.get_by_role("list", name="Flags of lefty").get_by_text("always left").wait_for()
    shot(page, "quality-table-flagged")
    row.get_by_role("button", name="Exclude lefty").click()
    row.get_by_text("excluded by rita").wait_for()
    assert page.get_by_test_id("quality-anna").get_by_role("button", name="Exclude anna").is_visible()

    # The next round (started as the scheduler would, run here as the worker would).
    started = rounds.round_start(project=project, triggered_by=users["adam"], enqueue=False)
    finished = rounds.round_run(round_id=started.pk)
    assert finished.status == "succeeded", finished.error
    assert finished.metrics["pairs"]["zero_weight_pairs_dropped"] == 20

    page.reload()
    weighting = page.get_by_test_id(f"round-weighting-{finished.pk}")
    weighting.wait_for()
    assert weighting.text_content() == "uniform + exclusions: excluded lefty"
    shot(page, "quality-round-names-exclusion")

    # And it is reversible from the same table.
    page.get_by_test_id("quality-lefty").get_by_role("button", name="Restore lefty").click()
    page.get_by_test_id("quality-lefty").get_by_role("button", name="Exclude lefty").wait_for()
