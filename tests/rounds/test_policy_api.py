"""Researchers sample from and download policy versions; a generated candidate's origin reproduces it."""

import io
import zipfile

import pytest
from transformers import AutoModelForCausalLM

from annotation.models import Candidate, Split
from tests.factories import PromptFactory
from training import rounds
from training.models import RoundStatus

from .conftest import add_judgments, loop_settings

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def policy_version(project, tiny_backbone, tiny_policy):
    project.training_settings = loop_settings(tiny_backbone, tiny_policy)
    project.save(update_fields=["training_settings"])
    add_judgments(project, 24)
    for i in range(3):
        PromptFactory(project=project, split=Split.EVAL, text=f"held out question {i}")
    done = rounds.round_run(round_id=rounds.round_start(project=project, enqueue=False).pk)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    return done.model_version


def sample(api, user, version, **body):
    return api.as_user(user).post(f"/api/v1/model-versions/{version.pk}/sample/", body, format="json")


def test_a_candidates_origin_reproduces_it_through_the_sample_endpoint(api, researcher, policy_version):
    candidate = Candidate.objects.filter(
        origin__round=policy_version.rounds.get().pk, origin__policy_version=policy_version.version
    ).first()
    origin = candidate.origin
    response = sample(
        api,
        researcher,
        policy_version,
        prompt=candidate.prompt.text,
        seed=origin["seed"],
        **origin["sampling"],
    )
    assert response.status_code == 200, response.json()
    assert response.json()["text"] == candidate.text
    again = sample(api, researcher, policy_version, prompt=candidate.prompt.text, seed=response.json()["seed"])
    repeat = sample(api, researcher, policy_version, prompt=candidate.prompt.text, seed=response.json()["seed"])
    assert again.json()["text"] == repeat.json()["text"] and again.json()["finish_reason"] in ("eos", "length")


def test_annotators_may_not_sample_and_bad_input_names_the_field(api, annotator, researcher, policy_version):
    assert sample(api, annotator, policy_version, prompt="hi").status_code == 403
    refused = sample(api, researcher, policy_version, prompt="hi", max_new_tokens=0)
    assert refused.status_code == 400 and "max_new_tokens" in refused.json()["errors"]


def test_a_policy_downloads_as_merged_weights_and_as_its_lora_adapter(api, researcher, policy_version, tmp_path):
    merged = api.as_user(researcher).get(f"/api/v1/model-versions/{policy_version.pk}/download/")
    assert merged.status_code == 200 and merged["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(merged.streaming_content))) as archive:
        assert "adapter/adapter_config.json" not in archive.namelist()
        archive.extractall(tmp_path / "merged")
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").config.num_hidden_layers == 2

    adapter = api.as_user(researcher).get(f"/api/v1/model-versions/{policy_version.pk}/download/?part=adapter")
    with zipfile.ZipFile(io.BytesIO(b"".join(adapter.streaming_content))) as archive:
        assert "adapter_config.json" in archive.namelist()
    bad = api.as_user(researcher).get(f"/api/v1/model-versions/{policy_version.pk}/download/?part=weights")
    assert bad.status_code == 400 and "part" in bad.json()["errors"]
