"""Simulated annotators' hidden preference (AlpacaFarm's idea, Dubois et al. 2023): a judge the round's own reward
model never sees, so a simulated flywheel can say whether the loop really learns.

A hidden preference scores (prompt, answer) pairs; :func:`simulated_choice` turns two scores into one simulated
annotator's pick, with label noise. Nothing here imports Django: ``training.flywheel`` drives it.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class HiddenPreference(Protocol):
    name: str

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """One score per (prompt, answer); higher is preferred. For image candidates the answers are the images'
        encoded bytes (``digits.DigitClassifierPreference``)."""
        ...


@dataclass
class KeywordPreference:
    """Prefers answers in which more of the words are ``keywords`` (share of whitespace-separated words).

    A preference simple enough that tiny models can learn it in a few rounds: the flywheel's tests use it.
    """

    keywords: frozenset[str]

    @property
    def name(self) -> str:
        return "keywords:" + ",".join(sorted(self.keywords))

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        scores = []
        for answer in answers:
            words = answer.split()
            scores.append(sum(w in self.keywords for w in words) / len(words) if words else 0.0)
        return scores


@dataclass
class RewardModelPreference:
    """A saved reward model (``training.ml.reward``) as the judge: its ensemble-mean reward. A ``prompt_template``
    in its manifest's ``extra`` (e.g. hh-rlhf's ``Human:/Assistant:`` turns) wraps each prompt before scoring, so
    the judge reads prompts as it was trained on them."""

    path: str

    def __post_init__(self):
        from .reward import MANIFEST, load_reward_model

        self._model = load_reward_model(self.path)
        manifest = json.loads((Path(self.path) / MANIFEST).read_text())
        self._template = (manifest.get("extra") or {}).get("prompt_template") or "{prompt}"

    @property
    def name(self) -> str:
        return f"reward-model:{os.path.basename(os.path.normpath(self.path))}"

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        wrapped = [self._template.format(prompt=p) for p in prompts]
        spaced = [" " + a if self._template != "{prompt}" else a for a in answers]  # hh answers follow "Assistant:"
        return self._model.score(wrapped, spaced).mean(0).tolist()


DIGITS_CLASSIFIER = "digits-classifier:"


def hidden_preference_from_spec(spec: str) -> HiddenPreference:
    """``keywords:w1,w2``, ``digits-classifier:<folder>`` (the digits demo's classifier, which scores PNG bytes)
    or a folder: a saved digits classifier is recognised by its manifest, anything else is read as a reward
    model."""
    if spec.startswith("keywords:"):
        words = frozenset(w for w in spec.removeprefix("keywords:").split(",") if w)
        if not words:
            raise ValueError("keywords: needs at least one word, e.g. keywords:great")
        return KeywordPreference(words)
    from .digits import CLASSIFIER_MANIFEST, DigitClassifierPreference

    folder = spec.removeprefix(DIGITS_CLASSIFIER)
    is_classifier = os.path.isfile(os.path.join(folder, CLASSIFIER_MANIFEST))
    if spec.startswith(DIGITS_CLASSIFIER) and not is_classifier:
        raise ValueError(f"No digits classifier at {folder!r} (no {CLASSIFIER_MANIFEST}); run manage.py digits_demo.")
    if is_classifier:
        return DigitClassifierPreference(folder)
    if not os.path.isdir(spec):
        raise ValueError(
            f"No reward model folder at {spec!r}; give a saved reward model, digits-classifier:<folder> or "
            "keywords:w1,w2."
        )
    return RewardModelPreference(spec)


def simulated_choice(score_a: float, score_b: float, *, noise: float, rng: random.Random) -> int | None:
    """0 if a simulated annotator picks ``a``, 1 for ``b``, None for a tie (equal scores, no noise draw).

    With probability ``noise`` the pick is a coin flip (a careless or mistaken label); otherwise the higher score
    wins. Label noise of this kind is what the robust DPO loss (``loss_type="robust"``) assumes.
    """
    if not 0.0 <= noise <= 1.0 or math.isnan(noise):
        raise ValueError("noise must be in [0, 1]")
    if rng.random() < noise:
        return rng.randrange(2)
    if score_a == score_b:
        return None
    return 0 if score_a > score_b else 1
