"""The demo loader: users per role and a project of real QA answers, safe to run twice."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.models import Candidate, Comparison, Membership, Project, Prompt
from annotation.schema import parse_schema

pytestmark = pytest.mark.django_db


def demo_load() -> str:
    out = StringIO()
    call_command("demo_load", stdout=out)
    return out.getvalue()


def test_it_creates_one_user_per_role_with_the_printed_password():
    output = demo_load()
    users = {u.username: u for u in get_user_model().objects.all()}
    project = Project.objects.get()
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"annotator": "annotator", "researcher": "researcher", "admin": "admin"}
    assert all(users[name].check_password("tandem-demo") for name in roles)
    assert users["admin"].is_superuser and users["admin"].is_staff
    assert not users["annotator"].is_staff
    assert "'tandem-demo'" in output and "/admin/" in output


def test_it_loads_the_fine_grained_rlhf_questions_as_pairs():
    demo_load()
    project = Project.objects.get()
    schema = parse_schema(project.schema)
    assert [c.key for c in schema.span_categories] == [
        "irrelevant",
        "wrong-grounding",
        "unverifiable",
        "redundant",
        "incoherent",
    ]
    assert (schema.strength.min, schema.strength.max) == (0, 3)
    assert {c.key for c in schema.criteria} == {"factuality", "completeness"}
    assert Prompt.objects.filter(project=project).count() == 60
    assert Prompt.objects.filter(project=project, split="eval").count() == 10
    assert Candidate.objects.filter(project=project).count() == 240
    assert Comparison.objects.filter(project=project).count() == 360
    owner = dict(Candidate.objects.filter(project=project).values_list("pk", "prompt_id"))
    lists = Comparison.objects.filter(project=project).values_list("prompt_id", "candidate_ids")
    assert all(len(ids) == 2 and {owner[c] for c in ids} == {prompt} for prompt, ids in lists)
    first = Prompt.objects.get(project=project, external_id="fgrlhf-qa-001")
    assert first.text == "Who sings hawaiian version of somewhere over the rainbow?"
    assert first.context[0]["content"].startswith("Passages the answers should be grounded in:")


def test_running_it_again_changes_nothing():
    demo_load()
    get_user_model().objects.filter(username="annotator").update(password="changed")
    output = demo_load()
    assert Project.objects.count() == 1
    assert get_user_model().objects.count() == 3
    assert Membership.objects.count() == 3
    assert Comparison.objects.count() == 360
    assert "comparisons: 0 created, 360 already there" in output
    assert get_user_model().objects.get(username="annotator").check_password("tandem-demo")


def test_it_points_to_the_port_the_demo_serves_on(monkeypatch):
    monkeypatch.setenv("PORT", "8765")
    output = demo_load()
    assert "http://127.0.0.1:8765/" in output and ":8000" not in output


def test_the_demo_project_ships_training_settings_a_round_accepts():
    from training.config import round_config_build

    call_command("demo_load", stdout=StringIO())
    project = Project.objects.get()
    config = round_config_build(project_settings=project.training_settings)
    assert (config.backbone, config.policy) == ("builtin:minilm", "builtin:smollm2")


def test_a_demo_loaded_before_its_prompts_named_their_licence_loads_again(tmp_path):
    demo_load()
    for prompt in Prompt.objects.all():
        del prompt.metadata["license"]
        prompt.save(update_fields=["metadata"])
    output = demo_load()
    assert "prompts: 0 created, 60 already there" in output
    assert set(Prompt.objects.values_list("metadata__license", flat=True)) == {"Apache-2.0"}


def test_an_export_of_the_demo_names_its_licence_in_the_card(tmp_path):
    from annotation.exporters import export_request_parse, export_to_folder
    from annotation.queue import comparison_claim

    from ..annotation.test_queue import submit

    demo_load()
    project = Project.objects.get()
    annotator = get_user_model().objects.get(username="annotator")
    for _ in range(3):
        submit(
            Comparison.objects.get(pk=comparison_claim(project_id=project.pk, annotator_id=annotator.pk).comparison_id),
            annotator,
        )
    export_to_folder(project, export_request_parse(shape="pairs", file_format="jsonl"), tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    front = card.split("---", 2)[1]
    assert 'license: "apache-2.0"' in front.splitlines()
    assert "| FineGrainedRLHF qa_feedback dev | Apache-2.0 | 3 |" in card
