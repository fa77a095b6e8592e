"""`manage.py train_reward` runs a round in-process and prints its metrics."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from training.ml.reward import MANIFEST
from training.models import ModelVersion, Round, RoundStatus, RoundTrigger
from training.registry import artifact_location

from .conftest import add_judgments

pytestmark = pytest.mark.django_db


def test_it_trains_evaluates_and_registers_from_the_shell(project, tiny_backbone):
    add_judgments(project, 40)
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "train_reward",
        "--project",
        str(project.pk),
        "--backbone",
        tiny_backbone,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--lr",
        "2e-3",
        "--eval-fraction",
        "0.25",
        "--config",
        '{"warmup_ratio": 0.1}',
        stdout=out,
        stderr=err,
    )
    finished = Round.objects.get(project=project)
    assert (finished.status, finished.trigger) == (RoundStatus.SUCCEEDED, RoundTrigger.COMMAND)
    assert finished.config["epochs"] == 1.0 and finished.config["learning_rate"] == 2e-3
    manifest = json.loads((artifact_location(ModelVersion.objects.get(project=project)) / MANIFEST).read_text())
    assert manifest["config"]["warmup_ratio"] == 0.1  # the schedule setting reaches the trainer
    version = ModelVersion.objects.get(project=project)
    assert version.is_active and f"Registered {version}" in out.getvalue()
    printed = json.loads(out.getvalue().split("\n", 1)[1].rsplit("\nRegistered", 1)[0])
    assert printed["eval"]["n_pairs"] == version.metrics["eval"]["n_pairs"]
    assert "training" in err.getvalue() and "evaluating" in err.getvalue()  # the progress bar and phases
    steps = version.metrics["train"]["steps"]
    assert steps > 0 and "training: 100%" in err.getvalue() and f" {steps}/{steps} " in err.getvalue()


def test_it_explains_what_is_missing(project, tiny_backbone):
    with pytest.raises(CommandError, match="backbone"):
        call_command("train_reward", "--project", str(project.pk))
    with pytest.raises(CommandError, match="no judgments"):
        call_command("train_reward", "--project", str(project.pk), "--backbone", tiny_backbone)
    with pytest.raises(CommandError, match="No project"):
        call_command("train_reward", "--project", "987654")
