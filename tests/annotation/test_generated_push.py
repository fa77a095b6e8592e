"""The one door from training into annotation: generated candidates and their comparisons arrive with their
origin, all or nothing, and annotators can claim and judge them like any other comparison."""

import pytest

from annotation.candidates import GeneratedCandidate, GeneratedComparison, PushInvalid, generated_comparisons_push
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Candidate, Comparison
from annotation.queue import comparison_claim
from tests.factories import ProjectFactory, PromptFactory

pytestmark = pytest.mark.django_db


def pair(prompt, *, round_id=7, priority=10, purpose="active"):
    return GeneratedComparison(
        prompt_id=prompt.pk,
        candidates=[
            GeneratedCandidate(text=f"answer {seed}", origin={"round": round_id, "policy_version": 2, "seed": seed})
            for seed in (101, 102)
        ],
        priority=priority,
        origin={"round": round_id, "purpose": purpose},
    )


def test_pushed_comparisons_carry_their_origin_and_are_served_first_by_priority(project, annotator):
    imported = PromptFactory(project=project)
    generated_prompt = PromptFactory(project=project)
    a, b = (Candidate.objects.create(project=project, prompt=imported, external_id=f"c{i}", text=f"t{i}") for i in "ab")
    Comparison.objects.create(
        project=project, prompt=imported, external_id="old", candidate_ids=[a.pk, b.pk], wanted=1, priority=0
    )

    result = generated_comparisons_push(project=project, batch="round-7", comparisons=[pair(generated_prompt)])

    assert (result.candidates_created, result.comparisons_created) == (2, 1)
    pushed = Comparison.objects.get(pk=result.comparison_ids[0])
    assert (pushed.origin, pushed.priority, pushed.wanted) == ({"round": 7, "purpose": "active"}, 10, project.overlap)
    candidates = Candidate.objects.filter(pk__in=pushed.candidate_ids).order_by("pk")
    assert [(c.source, c.origin["seed"], c.text) for c in candidates] == [
        ("generated", 101, "answer 101"),
        ("generated", 102, "answer 102"),
    ]
    claim = comparison_claim(project_id=project.pk, annotator_id=annotator.pk)
    assert claim.comparison_id == pushed.pk  # priority 10 before the imported one
    judgment, created = judgment_submit(
        comparison_id=pushed.pk,
        annotator_id=annotator.pk,
        answer=JudgmentInput(winner=pushed.candidate_ids[1], shown_order=pushed.candidate_ids),
        idempotency_key="k-1",
    )
    assert created and judgment.winner_id == pushed.candidate_ids[1]


def test_pushing_the_same_batch_again_adds_nothing(project):
    prompt = PromptFactory(project=project)
    first = generated_comparisons_push(project=project, batch="round-7", comparisons=[pair(prompt)])
    again = generated_comparisons_push(project=project, batch="round-7", comparisons=[pair(prompt)])
    assert again.comparison_ids == first.comparison_ids
    assert (again.candidates_created, again.comparisons_created) == (0, 0)
    assert (Candidate.objects.count(), Comparison.objects.count()) == (2, 1)


def test_a_push_that_does_not_fit_the_project_writes_nothing(project):
    prompt = PromptFactory(project=project)
    three = GeneratedComparison(
        prompt_id=prompt.pk,
        candidates=[GeneratedCandidate(text=str(i), origin={}) for i in range(3)],
        priority=0,
        origin={},
    )
    with pytest.raises(PushInvalid, match="Comparison 1 has 3 candidates; this project compares 2"):
        generated_comparisons_push(project=project, batch="b", comparisons=[pair(prompt), three])
    foreign = PromptFactory(project=ProjectFactory())
    with pytest.raises(PushInvalid, match=f"prompt {foreign.pk} is not a prompt of this project"):
        generated_comparisons_push(project=project, batch="b", comparisons=[pair(foreign)])
    assert (Candidate.objects.count(), Comparison.objects.count()) == (0, 0)


# --- Generated images --------------------------------------------------------------------------


def _png(color) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(out, format="PNG")
    return out.getvalue()


def image_pair(prompt, first=(255, 0, 0), second=(0, 0, 255)):
    return GeneratedComparison(
        prompt_id=prompt.pk,
        candidates=[
            GeneratedCandidate(text="", media=_png(color), origin={"round": 3, "seed": seed})
            for seed, color in ((1, first), (2, second))
        ],
        priority=5,
        origin={"round": 3, "purpose": "policy_vs_previous"},
    )


@pytest.fixture
def image_project(settings, tmp_path):
    from annotation.models import Modality

    settings.MEDIA_ROOT = tmp_path / "media"
    return ProjectFactory(modality=Modality.IMAGE)


def test_a_generated_image_is_stored_and_served(image_project, api):
    from annotation.models import Membership, Role
    from tests.factories import UserFactory

    annotator = UserFactory(username="anna")
    Membership.objects.create(project=image_project, user=annotator, role=Role.ANNOTATOR)
    prompt = PromptFactory(project=image_project)

    result = generated_comparisons_push(project=image_project, batch="round-3", comparisons=[image_pair(prompt)])

    candidates = list(Candidate.objects.filter(pk__in=Comparison.objects.get().candidate_ids).order_by("pk"))
    assert result.candidates_created == 2
    assert [(c.mime_type, c.media_width, c.media_height, c.source) for c in candidates] == [
        ("image/png", 16, 12, "generated")
    ] * 2
    for candidate, color in zip(candidates, ((255, 0, 0), (0, 0, 255)), strict=True):
        assert candidate.media.name.startswith("candidates/sha256/")
        assert candidate.media.read() == _png(color)
    task = api.as_user(annotator).get(f"/api/v1/projects/{image_project.pk}/next/").json()
    assert {c["media_url"] for c in task["candidates"]} == {
        f"http://testserver/media/{c.media.name}" for c in candidates
    }


def test_a_generated_file_that_is_not_an_image_writes_nothing(image_project, tmp_path):
    prompt = PromptFactory(project=image_project)
    good = image_pair(prompt).candidates[0]
    html = GeneratedCandidate(text="", media=b"<html><script>alert(1)</script></html>", origin={})
    comparisons = [
        image_pair(prompt),
        GeneratedComparison(prompt_id=prompt.pk, candidates=[good, html], priority=0, origin={}),
    ]
    with pytest.raises(PushInvalid, match=r"^comparison 1, candidate 1: it is an HTML page"):
        generated_comparisons_push(project=image_project, batch="round-3", comparisons=comparisons)
    assert not Candidate.objects.exists()
    assert not (tmp_path / "media").exists() or not any(p.is_file() for p in (tmp_path / "media").rglob("*"))


def test_files_stored_by_a_push_that_fails_are_deleted(image_project, tmp_path, monkeypatch):
    prompt = PromptFactory(project=image_project)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Comparison.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        generated_comparisons_push(project=image_project, batch="round-3", comparisons=[image_pair(prompt)])
    assert not Candidate.objects.exists()
    assert not any(p.is_file() for p in (tmp_path / "media").rglob("*"))


def test_pushing_the_same_images_again_stores_nothing_new(image_project):
    prompt = PromptFactory(project=image_project)
    generated_comparisons_push(project=image_project, batch="round-3", comparisons=[image_pair(prompt)])
    again = generated_comparisons_push(project=image_project, batch="round-3", comparisons=[image_pair(prompt)])
    assert (again.candidates_created, again.comparisons_created) == (0, 0)


def test_a_push_is_served_in_the_order_it_came_in(project, annotator):
    # Active selection pushes its pairs most uncertain first: the queue's hashed order must not reshuffle them.
    prompts = [PromptFactory(project=project) for _ in range(6)]
    pushed = generated_comparisons_push(project=project, batch="round-8", comparisons=[pair(p) for p in prompts])
    served = []
    for _ in prompts:
        claim = comparison_claim(project_id=project.pk, annotator_id=annotator.pk)
        comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
        answer = JudgmentInput(winner=comparison.candidate_ids[0], shown_order=comparison.candidate_ids)
        judgment_submit(
            comparison_id=comparison.pk,
            annotator_id=annotator.pk,
            answer=answer,
            idempotency_key=f"k{claim.comparison_id}",
        )
        served.append(comparison.pk)
    assert served == pushed.comparison_ids
