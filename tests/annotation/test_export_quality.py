"""Exports carry each judgment's training weight and its annotator's reliability on request, and the dataset card
reports the project's agreement statistics."""

import krippendorff
import pytest

from annotation.exporters import ExportInvalid, card_numbers, export_request_parse, export_to_folder
from annotation.models import AnnotatorQuality, Judgment
from annotation.quality.exclusions import annotator_exclude
from annotation.quality.service import quality_recompute

from ..factories import UserFactory
from .export_read import card, read_rows
from .export_world import judged_project

pytestmark = pytest.mark.django_db


def _export(project, tmp_path, shape, file_format="jsonl", **options):
    request = export_request_parse(shape=shape, file_format=file_format, options=options)
    folder = tmp_path / f"{shape}-{file_format}-{len(list(tmp_path.iterdir()))}"
    export_to_folder(project, request, folder)
    return read_rows(folder, file_format), card(folder)


def test_rows_carry_the_estimated_reliability_and_its_weight(tmp_path):
    world = judged_project()
    quality_recompute(project_id=world.project.pk)
    AnnotatorQuality.objects.filter(annotator__username="anna").update(reliability=0.9, weight=0.8)
    rows, _ = _export(world.project, tmp_path, "judgments", "parquet", quality=True)
    anna = [row for row in rows if row["annotator"] == "anna"]
    assert anna and all((row["weight"], row["annotator_reliability"]) == (0.8, 0.9) for row in anna)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
@pytest.mark.parametrize("shape", ["pairs", "judgments", "rankings"])
def test_rows_carry_the_weight_training_uses_and_the_annotators_reliability(tmp_path, shape, file_format):
    world = judged_project()
    quality_recompute(project_id=world.project.pk)
    annotator_exclude(project=world.project, annotator_id=world.users[1].pk, actor=UserFactory(username="res"))
    stored = {q.annotator.username: q for q in AnnotatorQuality.objects.filter(project=world.project)}

    rows, _ = _export(world.project, tmp_path, shape, file_format, quality=True)
    assert rows
    for row in rows:
        figures = stored[row["annotator"]]
        # Too little overlap here to estimate a reliability: weight 1, as training gives; bob is excluded.
        assert figures.reliability is None and figures.weight is None
        assert row["weight"] == (0.0 if row["annotator"] == "bob" else 1.0)
        assert row["annotator_reliability"] is None

    plain, _ = _export(world.project, tmp_path, shape, file_format)
    assert "weight" not in plain[0] and "annotator_reliability" not in plain[0]


def test_the_card_reports_agreement_that_matches_the_reference_package(tmp_path):
    world = judged_project()
    _, before = _export(world.project, tmp_path, "pairs")
    assert "have not been computed" in before

    quality_recompute(project_id=world.project.pk)
    _, text = _export(world.project, tmp_path, "pairs")
    # The same choices coded for the package: annotators × comparisons, the chosen candidate's stored position (a
    # ranking's top) or a tie; every comparison twice, as stored and with its positions reversed.
    users = sorted({j.annotator_id for j in Judgment.objects.filter(project=world.project)})
    comparisons = sorted({j.comparison_id for j in Judgment.objects.filter(project=world.project)})
    codes, matrix = {}, [[float("nan")] * (2 * len(comparisons)) for _ in users]
    for j in Judgment.objects.filter(project=world.project).select_related("comparison"):
        k = len(j.comparison.candidate_ids)
        at = j.comparison.candidate_ids.index(j.winner_id or j.ranking[0]) if not j.tie else None
        for column, choice in enumerate(["tie" if j.tie else (at, k), "tie" if j.tie else (k - 1 - at, k)]):
            index = 2 * comparisons.index(j.comparison_id) + column
            matrix[users.index(j.annotator_id)][index] = codes.setdefault(choice, len(codes))
    alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert f"Krippendorff's alpha (nominal) {alpha:.3f}" in text
    assert "- strength: Krippendorff's alpha ordinal" in text
    assert "- rating `helpful`" in text
    # All three annotators marked the same six characters "incorrect" on the first comparison.
    assert "- spans `incorrect`: overlap F1 1.000 over 3 annotator pairs" in text
    assert card_numbers(text)["rows"] == 16  # the numbers block still reads back


def test_a_quality_option_that_is_not_a_boolean_is_named():
    with pytest.raises(ExportInvalid) as caught:
        export_request_parse(shape="pairs", file_format="jsonl", options={"quality": "yes"})
    assert "options.quality" in caught.value.errors
