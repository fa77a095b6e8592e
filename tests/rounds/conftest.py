"""Fixtures for rounds, the registry, the scheduler and the training API: a tiny backbone built here (no
downloads), judgments written as annotation rows, and settings that make rounds fast and observable."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from celery.contrib.testing.worker import start_worker

from annotation.models import Comparison, Judgment, Membership, Role
from config.celery import app
from tests.factories import CandidateFactory, PromptFactory, UserFactory
from tests.training.synthetic import (
    CUE,
    FILLER_A,
    FILLER_B,
    MARKER,
    build_tiny_backbone,
    build_tiny_causal_lm,
    marker_judgments,
)
from training.models import ModelKind, ModelVersion

# Tiny models: one thread is fastest, and extra threads only oversubscribe a shared 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A saved 2-layer BERT (hidden 32) with a word-level tokenizer trained on the synthetic vocabulary."""
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"), words=[*FILLER_A, *FILLER_B, MARKER, CUE, "to"])


@pytest.fixture(autouse=True)
def training_settings(settings, tmp_path, tmp_path_factory):
    settings.TRAINING_ARTIFACTS_DIR = tmp_path / "artifacts"
    # The tiny backbones are saved under pytest's temporary folder: the one allowed backbone root here.
    settings.TRAINING_BACKBONE_ROOTS = [tmp_path_factory.getbasetemp()]
    settings.TRAINING_PROGRESS_INTERVAL = 0  # write every report: tests watch the row
    settings.TRAINING_REWARD_BACKBONE = None
    return settings


def fast_settings(backbone: str, **extra) -> dict:
    """Project training settings that train a tiny model in about a second."""
    return {
        "backbone": backbone,
        "epochs": 2,
        "batch_size": 8,
        "max_length": 32,
        "learning_rate": 2e-3,
        "warmup_ratio": 0.0,  # the tiny models' schedule; the default's warm-up is tuned for MiniLM
        "eval_fraction": 0.25,
        "seed": 0,
        **extra,
    }


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-policy"), words=[*FILLER_A, MARKER])


def loop_settings(backbone: str, policy: str, **extra) -> dict:
    loop = {
        "policy": policy,
        "prompts_per_round": 6,
        "candidates_per_prompt": 4,
        "max_new_tokens": 8,
        "eval_prompts": 3,
        "push_active_pairs": 2,
        "policy_max_steps": 2,
        "policy_batch_size": 4,
        "policy_learning_rate": 1e-3,
    }
    return fast_settings(backbone, **{**loop, **extra})


@pytest.fixture
def trainable(project, tiny_backbone):
    """The project, set up to train on the tiny backbone."""
    project.training_settings = fast_settings(tiny_backbone)
    project.save(update_fields=["training_settings"])
    return project


def add_judgments(project, n: int, *, seed: int = 1, start: int = 0, annotator=None, gold: bool = False) -> list:
    """``n`` pairwise judgments (one prompt each) where the candidate with the marker word wins."""
    if annotator is None:
        annotator = UserFactory(username=f"labeller-{project.pk}")
        Membership.objects.get_or_create(project=project, user=annotator, defaults={"role": Role.ANNOTATOR})
    judgments = []
    for record in marker_judgments(n, seed=seed, start_id=start):
        prompt = PromptFactory(project=project, text=record.prompt_text)
        candidates = {key: CandidateFactory(prompt=prompt, text=text) for key, text in record.candidates.items()}
        winner = candidates[record.winner]
        # Training reads a comparison's candidates from candidate_ids only (annotation may drop its through table).
        comparison = Comparison.objects.create(
            project=project,
            prompt=prompt,
            external_id=f"cmp-{prompt.external_id}",
            candidate_ids=[c.pk for c in candidates.values()],
            wanted=1,
            judged=1,
            status="done",
            is_gold=gold,
            gold_answer={"winner": winner.pk} if gold else None,
        )
        judgments.append(
            Judgment(
                project=project,
                comparison=comparison,
                annotator=annotator,
                winner=winner,
                idempotency_key=f"k-{comparison.pk}",
                shown_order=[c.pk for c in candidates.values()],
            )
        )
    return Judgment.objects.bulk_create(judgments)


def previous_version(project, **fields) -> ModelVersion:
    """An already-registered, active reward version (version 1) standing in for last round's result."""
    values = {
        "kind": ModelKind.REWARD,
        "version": 1,
        "base_model": "earlier-backbone",
        "artifact_path": "earlier/v1",
        "metrics": {"eval": {"accuracy": 0.5, "n_pairs": 10}},
        "judgment_snapshot_id": "ps-earlier",
        "judgment_count": 10,
        "is_active": True,
    }
    return ModelVersion.objects.create(project=project, **{**values, **fields})


@pytest.fixture
def sent_rounds(monkeypatch):
    """Ids of the rounds whose task was sent to the broker (nothing reaches a broker)."""
    from training import dispatch

    sent = []

    def record(name, round_id):
        assert name == dispatch.ROUND_RUN
        sent.append(round_id)

    monkeypatch.setattr(dispatch, "send", record)
    return sent


@pytest.fixture
def gpu_worker():
    app.control.purge()  # messages left by an earlier, interrupted run must not reach this worker
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["gpu"], loglevel="WARNING") as worker:
        yield worker
