"""Building comparisons from the candidates a project's prompts already have."""

import json

import pytest

from annotation.comparisons import BuildModeInvalid, candidate_groups, comparisons_build
from annotation.importers import import_file
from annotation.models import Candidate, Comparison, Prompt

from ..factories import CandidateFactory, ProjectFactory, PromptFactory


def prompt_with(project, n: int, external_id: str):
    prompt = PromptFactory(project=project, external_id=external_id)
    return [CandidateFactory(prompt=prompt, external_id=f"{external_id}-{i}").pk for i in range(n)]


def built(project) -> list[list[int]]:
    return [c.candidate_ids for c in Comparison.objects.filter(project=project).order_by("pk")]


def test_pairs_are_every_unordered_pair_in_candidate_order():
    assert candidate_groups(["a", "b", "c"], mode="pairs", arity=2) == [["a", "b"], ["a", "c"], ["b", "c"]]


def test_groups_fill_a_remainder_from_the_start():
    assert candidate_groups(list("abcde"), mode="groups", arity=2) == [["a", "b"], ["c", "d"], ["e", "a"]]
    assert candidate_groups(list("abcd"), mode="groups", arity=3) == [["a", "b", "c"], ["d", "a", "b"]]
    assert candidate_groups(list("ab"), mode="groups", arity=3) == []


def test_pairs_need_a_pairwise_project():
    with pytest.raises(BuildModeInvalid, match="use 'groups'"):
        candidate_groups(["a", "b", "c"], mode="pairs", arity=3)
    with pytest.raises(BuildModeInvalid, match="Unknown mode"):
        candidate_groups(["a", "b"], mode="triples", arity=2)


@pytest.mark.django_db
def test_it_builds_all_pairs_of_each_prompt(project):
    first = prompt_with(project, 3, "q1")
    second = prompt_with(project, 2, "q2")
    prompt_with(project, 1, "lonely")
    assert comparisons_build(project=project, mode="pairs", priority=4) == 4
    assert built(project) == [[first[0], first[1]], [first[0], first[2]], [first[1], first[2]], second]
    comparison = Comparison.objects.filter(project=project).first()
    assert (comparison.priority, comparison.wanted, comparison.status) == (4, project.overlap, "open")
    owners = Candidate.objects.filter(pk__in=comparison.candidate_ids).values_list("prompt_id", flat=True)
    assert list(owners) == [comparison.prompt_id] * 2


@pytest.mark.django_db
def test_it_builds_k_way_groups_for_a_ranking_project():
    project = ProjectFactory(schema={"arity": 3})
    ids = prompt_with(project, 4, "q")
    assert comparisons_build(project=project, mode="groups") == 2
    assert built(project) == [ids[:3], [ids[3], ids[0], ids[1]]]


@pytest.mark.django_db
def test_building_twice_creates_nothing_new(project):
    prompt_with(project, 3, "q1")
    comparisons_build(project=project, mode="pairs")
    prompt_with(project, 2, "q2")
    assert comparisons_build(project=project, mode="pairs") == 1
    assert comparisons_build(project=project, mode="pairs") == 0
    assert Comparison.objects.filter(project=project).count() == 4


@pytest.mark.django_db
def test_it_builds_only_for_the_prompts_given(project):
    prompt_with(project, 2, "q1")
    prompt_with(project, 2, "q2")
    wanted = Prompt.objects.get(project=project, external_id="q2")
    assert comparisons_build(project=project, mode="pairs", prompt_ids=[wanted.pk]) == 1
    assert Comparison.objects.get(project=project).prompt == wanted


@pytest.mark.django_db
def test_a_built_pair_is_the_same_comparison_a_bundle_imports(project, tmp_path):
    path = tmp_path / "bundle.jsonl"
    row = {"id": "q", "text": "?", "candidates": [{"id": c, "text": c} for c in "abc"], "comparisons": "pairs"}
    path.write_text(json.dumps(row) + "\n")
    import_file(project=project, kind="bundle", path=path)
    assert comparisons_build(project=project, mode="pairs") == 0


@pytest.mark.django_db
def test_a_bad_mode_is_refused_before_anything_is_built(project):
    prompt_with(project, 3, "q1")
    with pytest.raises(BuildModeInvalid):
        comparisons_build(project=project, mode="pairs-ish")
    assert not Comparison.objects.exists()
