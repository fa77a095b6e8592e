"""A round is a list of small named steps, run in order by the lifecycle in ``training/rounds.py``.

Each step is a function ``run(ctx)`` that reads what earlier steps left on the :class:`RoundContext`, does its
work through the ML core (``training/ml``, no Django), reports through ``ctx.progress`` and leaves its result on the
context. **Nothing a step does is visible outside the round until the round commits**: a step that must write to
the database (register a version, push comparisons into the queue) *stages* the write with ``ctx.stage(...)``;
the lifecycle runs the staged writes in one transaction, together with marking the round succeeded, only after
every step succeeded. A failed or cancelled round therefore pushes nothing and registers nothing, and the files it
wrote (``ctx.artifacts``) are deleted.

Which steps a round has depends on its kind (``Round.kind``): a ``reward`` round trains and evaluates the reward
model (and the span model); a ``policy`` round is the whole loop of ``docs/DESIGN.md`` §1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import registry
from ..config import RoundConfig
from ..models import ModelKind, ModelVersion, Round
from ..progress import RoundProgress


@dataclass
class RoundContext:
    """What one attempt at one round carries from step to step."""

    round: Round
    """The row as claimed (with its project); its ``config`` and ``judgment_max_id`` are the round's snapshot."""
    config: RoundConfig
    attempt: int
    progress: RoundProgress
    metrics: dict = field(default_factory=dict)
    """The round's metrics, filled in by the steps; stored on the round when it commits."""
    artifacts: list[Path] = field(default_factory=list)
    """Folders this attempt wrote; deleted unless the round commits."""
    staged: list[Callable[[RoundContext], None]] = field(default_factory=list)
    """Database writes to run, in order, in the transaction that marks the round succeeded."""
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    """Versions registered by the staged writes, by kind (filled in during the commit)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What a step hands to the later steps, by name (``reward_model``, ``generated``, ``scores``, ``policy_path``…)."""

    @property
    def project_id(self) -> int:
        return self.round.project_id

    @property
    def modality(self):
        """The project's :class:`training.ml.modality.Modality`: how its outputs are generated, optimised, evaluated."""
        from training.ml.modality import modality_for

        return modality_for(self.round.project.modality)

    @property
    def seed(self) -> int:
        return self.config.seed if self.config.seed is not None else self.round.project_id

    def stage(self, write: Callable[[RoundContext], None]) -> None:
        self.staged.append(write)

    def new_artifact(self, kind: str) -> tuple[str, Path]:
        """A fresh artifact folder for ``kind`` (relative path for the registry, absolute path to write), deleted
        again unless the round commits."""
        relpath = registry.artifact_relpath(
            project_id=self.project_id, kind=kind, round_id=self.round.pk, attempt=self.attempt
        )
        path = registry.artifact_location(relpath)
        self.artifacts.append(path)
        return relpath, path


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[RoundContext], None]
    weight: float
    """Share of the progress bar (relative to the other steps of the round)."""


def steps_for(kind: str) -> list[Step]:
    from . import evaluate, generate, policy, push, reward, score

    if kind == ModelKind.REWARD:
        return [Step("reward", reward.run, 1.0)]
    if kind == ModelKind.POLICY:
        return [
            Step("reward", reward.run, 0.3),
            Step("generate", generate.run, 0.2),
            Step("score", score.run, 0.05),
            Step("optimise", policy.run, 0.3),
            Step("evaluate", evaluate.run, 0.1),
            Step("push", push.run, 0.05),
        ]
    raise ValueError(f"A round of kind {kind!r} has no steps.")
