"""Per-segment scores of a text under a project's span-reward model (the fine-grained reward, DESIGN §5).

A round that trains a span model registers it as a ``span`` version (``training.rounds``); one per project is
active, like reward versions. This module scores a candidate (or any posted text) with the active one, or with
a given span version, and returns each sentence segment with its code-point offsets (end exclusive — the offsets
annotation stores for span marks, so a client can lay scores over the same text it marks) and, per category, the
penalty P(error of that category in this segment) and the segment's reward −Σ_c w_c · penalty_c.

Loaded models are kept per process (``training.model_cache``).
"""

from __future__ import annotations

from annotation.models import Candidate

from . import registry
from .judgments_source import render_prompt
from .model_cache import cached_model
from .models import ModelKind, ModelVersion, VersionStatus

TEXT_MAX_CHARS = 100_000


class SpanScoringError(Exception):
    """Why a text cannot be scored, for a person; ``field`` names the input at fault (None: the project's state)."""

    def __init__(self, message: str, *, field: str | None = None):
        self.message, self.field = message, field
        super().__init__(message)


def span_version_for(*, project_id: int, version_id: int | None) -> ModelVersion:
    """The span version to score with: ``version_id`` (a ready span version of this project) or the active one."""
    if version_id is None:
        version = registry.active_version(project_id=project_id, kind=ModelKind.SPAN)
        if version is None:
            raise SpanScoringError(
                "This project has no active span-reward model: give its schema span categories, collect judgments "
                "with span marks, and run a training round."
            )
        return version
    version = ModelVersion.objects.filter(pk=version_id, project_id=project_id, kind=ModelKind.SPAN).first()
    if version is None:
        raise SpanScoringError(f"No span model version {version_id} in this project.", field="model_version")
    if version.status != VersionStatus.READY:
        raise SpanScoringError(f"Span model version {version.version} is {version.status}.", field="model_version")
    return version


def candidate_input(*, project_id: int, candidate_id: int) -> tuple[str, str]:
    """(text, prompt) of a text candidate of the project, the prompt rendered as the models saw it in training."""
    row = (
        Candidate.objects.filter(pk=candidate_id, prompt__project_id=project_id)
        .values_list("text", "prompt__text", "prompt__context")
        .first()
    )
    if row is None:
        raise SpanScoringError(f"No candidate {candidate_id} in this project.", field="candidate")
    text, prompt_text, context = row
    if not (text or "").strip():
        raise SpanScoringError(f"Candidate {candidate_id} has no text to score (media?).", field="candidate")
    return text, render_prompt(prompt_text, context)


def span_scores(*, version: ModelVersion, text: str, prompt: str = "") -> dict:
    """Score ``text`` (answering ``prompt``) with the span model of ``version``."""
    if len(text) > TEXT_MAX_CHARS:
        raise SpanScoringError(f"The text is {len(text)} characters; at most {TEXT_MAX_CHARS}.", field="text")
    model = _load(version)
    dense = model.dense_reward(text, prompt=prompt)
    return {
        "model_version": version.pk,
        "version": version.version,
        "categories": list(model.config.categories),
        "category_weights": {c: model.config.category_weights.get(c, 1.0) for c in model.config.categories},
        "text_length": len(text),
        "segments": [
            {
                "start": s["start"],
                "end": s["end"],
                "text": text[s["start"] : s["end"]],
                "penalties": s["penalties"],
                "reward": s["reward"],
            }
            for s in dense["segments"]
        ],
        "total": dense["total"],
    }


def _load(version: ModelVersion):
    path = registry.artifact_location(version)
    if not path.is_dir():
        raise SpanScoringError(f"The artifact of span model version {version.version} is missing at {path}.")

    def load(path):
        from training.ml.span_rewards import load_span_reward_model  # torch: only in processes that score

        return load_span_reward_model(path)

    return cached_model(path, load)
