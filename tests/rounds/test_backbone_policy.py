"""The backbone allow-list: builtins, cached hub ids, and absolute folders under the allowed roots only."""

import shutil

import pytest

from training import rounds
from training.backbone_policy import backbone_check, backbone_for_loading
from training.config import ConfigInvalid, round_config_build
from training.ml.backbones import BackboneNotAvailable
from training.models import ModelVersion, RoundStatus

from .conftest import add_judgments

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(settings, tmp_path):
    """An allowed root with a model folder in it, and a folder outside every root."""
    allowed, outside = tmp_path / "models", tmp_path / "elsewhere"
    (allowed / "good").mkdir(parents=True)
    (outside / "secret").mkdir(parents=True)
    settings.TRAINING_BACKBONE_ROOTS = [allowed]
    return allowed, outside


def refusal(spec: str) -> str:
    with pytest.raises(ConfigInvalid) as caught:
        round_config_build(overrides={"backbone": spec})
    assert list(caught.value.errors) == ["backbone"]
    return caught.value.errors["backbone"][0]


def test_builtins_hub_ids_and_folders_under_a_root_are_accepted(roots):
    allowed, _ = roots
    for spec in ("builtin:minilm", "builtin:smollm2", "sentence-transformers/all-MiniLM-L6-v2", "gpt2"):
        assert round_config_build(overrides={"backbone": spec}).backbone == spec
    assert backbone_check(str(allowed / "good")) == (allowed / "good").resolve()


def test_paths_outside_the_roots_are_refused_naming_the_problem(roots):
    allowed, outside = roots
    assert "outside the allowed backbone folders" in refusal(str(outside / "secret"))
    assert str(allowed.resolve()) in refusal("/etc")
    assert "contains '..'" in refusal(f"{allowed}/../elsewhere/secret")
    assert "contains '..'" in refusal(f"{allowed}/good/..")
    assert "relative path" in refusal("../models/good")
    assert "relative path" in refusal("models/good/x")
    assert "does not exist" in refusal(str(allowed / "missing"))
    assert "Unknown builtin" in refusal("builtin:gpt5")
    assert "neither a hub id" in refusal("bad id with spaces")


def test_a_symlink_out_of_a_root_is_refused_and_one_inside_it_is_followed(roots):
    allowed, outside = roots
    (allowed / "escape").symlink_to(outside / "secret", target_is_directory=True)
    message = refusal(str(allowed / "escape"))
    assert "symlink" in message and str((outside / "secret").resolve()) in message
    (allowed / "alias").symlink_to(allowed / "good", target_is_directory=True)
    assert backbone_for_loading(str(allowed / "alias")) == str((allowed / "good").resolve())


def test_a_hub_id_loads_from_the_cache_never_from_a_same_named_local_folder(roots, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)  # would be what from_pretrained("org/model") opens
    with pytest.raises(BackboneNotAvailable, match="not in the local Hugging Face cache"):
        backbone_for_loading("org/model")
    assert backbone_for_loading("builtin:minilm") == "builtin:minilm"  # the ML core finds its package


def test_the_api_answers_400_naming_the_backbone(api, admin, project):
    add_judgments(project, 2)
    response = api.as_user(admin).post(
        f"/api/v1/projects/{project.pk}/rounds/", {"config": {"backbone": "/etc/../root"}}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["config.backbone"]
    assert "'..'" in response.json()["errors"]["config.backbone"][0]


def test_the_worker_checks_again_and_fails_a_round_whose_folder_became_a_symlink_out(
    settings, project, tiny_backbone, tmp_path
):
    allowed = tmp_path / "models"
    allowed.mkdir()
    shutil.copytree(tiny_backbone, allowed / "tiny")
    settings.TRAINING_BACKBONE_ROOTS = [allowed]
    add_judgments(project, 8)
    started = rounds.round_start(
        project=project, overrides={"backbone": str(allowed / "tiny"), "max_length": 32}, enqueue=False
    )
    # Between the start (checked) and the run, the folder is swapped for a link to a copy outside the root.
    shutil.copytree(allowed / "tiny", tmp_path / "outside-copy")
    shutil.rmtree(allowed / "tiny")
    (allowed / "tiny").symlink_to(tmp_path / "outside-copy", target_is_directory=True)
    done = rounds.round_run(round_id=started.pk)
    assert done.status == RoundStatus.FAILED and "symlink" in done.error
    assert not ModelVersion.objects.exists()
