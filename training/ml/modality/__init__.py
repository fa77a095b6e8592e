"""One interface per kind of output (text, image; video and audio next): what a round's steps call, so a step never
branches on the modality.

A modality says, for its kind of output, how a generator produces K candidates for a prompt (each with the seed
that reproduces it), which preference optimiser updates the generator and how it is saved, and how a new generator
is evaluated against the previous one. The reward model scores a modality's candidates through
``Output.reward_input`` (text, or the media bytes). Storing and checking media is annotation's
(``annotation/media.py``); nothing here imports Django.

The round's settings reach a modality as the plain ``RoundConfig`` snapshot (a mapping); each modality reads the
keys it documents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

ProgressFn = Callable[[int, int, float], None]
AdvanceFn = Callable[[int, int], None]
RewardScore = Callable[[Sequence[str], Sequence[Any]], Any]
"""``score(prompts, reward_inputs) -> (M, N)`` per-member rewards (``RewardModel.score`` and its image twin)."""


@dataclass(frozen=True)
class Output:
    """One generated candidate: text, or media bytes with their MIME type. ``seed`` reproduces it."""

    prompt_index: int
    seed: int
    text: str = ""
    media: bytes | None = None
    mime_type: str = "text/plain"
    metadata: dict = field(default_factory=dict)
    """What a person or the registry may want to know: tokens and finish reason (text); size and steps (image)."""

    @property
    def reward_input(self) -> Any:
        return self.media if self.media is not None else self.text


@dataclass(frozen=True)
class OutputPair:
    """A preference for the optimiser: ``chosen`` is the better output for ``prompt``."""

    prompt: str
    chosen: Output
    rejected: Output
    source: str = "rm"
    """``rm`` (ranked by the reward model) or ``human`` (judged by people)."""


@dataclass
class Trained:
    """An optimised generator, ready to be saved; ``metrics`` are the optimiser's (steps, losses, margins…)."""

    model: Any
    metrics: dict


@dataclass
class Evaluation:
    metrics: dict
    """Reward of new and previous, the reward model's win rate with its interval, and what the modality adds (KL
    and length for text)."""
    new: list[Output]
    previous: list[Output]
    sampling: dict
    """The sampling parameters of these outputs, as recorded in their origin."""


class Modality(Protocol):
    name: str
    span_rewards: bool
    """Whether judgments' span marks train a fine-grained span model for this kind of output (text only so far)."""

    def reward_train(self, pairs, *, backbone: str, settings: Mapping, seed: int, progress: ProgressFn | None) -> Any:
        """A reward model (an ensemble, with ``score(prompts, reward_inputs) -> (M, N)``) on ``pairs.train``."""

    def reward_evaluate(self, model, pairs) -> dict:
        """Held-out metrics of the reward model on ``pairs`` (accuracy, calibration, the modality's bias check)."""

    def reward_save(self, model, path, *, extra: dict) -> None: ...

    def reward_load(self, path) -> Any: ...

    def sampling(self, settings: Mapping) -> dict:
        """The sampling parameters for generation, read from the round's settings (recorded in each origin)."""

    def generate(
        self,
        path: str,
        prompts: Sequence[str],
        *,
        k: int,
        sampling: dict,
        base_seed: int,
        batch_size: int,
        progress: AdvanceFn | None,
    ) -> list[list[Output]]:
        """K outputs per prompt from the generator saved at ``path``, ``batch_size`` at a time (the batch never
        changes an output: each has its own seed)."""

    def human_pairs(self, pairs: Sequence) -> list[OutputPair]:
        """People's preference pairs (``training.ml.pairs.PreferencePair``) as pairs for the optimiser."""

    def optimise(
        self,
        *,
        start: str,
        reference: str | None,
        pairs: Sequence[OutputPair],
        prompts: Sequence[str],
        reward_score: RewardScore,
        settings: Mapping,
        seed: int,
        progress: ProgressFn | None,
    ) -> Trained:
        """Update the generator at ``start`` (preference pairs, or on-policy with ``reward_score``)."""

    def save(self, trained: Trained, path, *, extra: dict) -> None:
        """Save atomically, loadable by ``generate`` (and by plain ``from_pretrained`` where that applies)."""

    def evaluate(
        self,
        *,
        new: str,
        previous: str,
        reference: str,
        prompts: Sequence[str],
        reward_score: RewardScore,
        settings: Mapping,
        base_seed: int,
        progress: Callable[[str, float], None] | None,
    ) -> Evaluation:
        """One output per prompt from ``new`` and ``previous`` with the same seeds, and their metrics."""


def modality_for(name: str) -> Modality:
    if name == "text":
        from .text import TextModality

        return TextModality()
    if name == "image":
        from .image import ImageModality

        return ImageModality()
    raise ValueError(f"The loop is built for text and images so far; {name!r} outputs have no interface yet.")
