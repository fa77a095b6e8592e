"""Simulated annotators that label through the real queue and submission services (tests and bench/quality_bench.py).

Each behaviour sees what a person sees — the candidates in a shuffled left-to-right order — and, for the honest and
adversarial ones, which candidate is truly better (the simulation knows; people judge). Their answers go through
``comparison_claim`` and ``judgment_submit`` exactly as the API's would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..judgments import JudgmentInput, judgment_submit
from ..models import Comparison, Project
from ..queue import comparison_claim

# (shown left to right, the truly better candidate or None, rng) → the chosen candidate
Choose = Callable[[list[int], int | None, random.Random], int]


@dataclass(frozen=True)
class Behaviour:
    name: str
    choose: Choose
    time_ms: tuple[int, int] = (4000, 20000)
    """Uniform range of the time spent per judgment."""


def honest(accuracy: float = 0.9) -> Behaviour:
    def choose(shown, better, rng):
        if better is None:
            return rng.choice(shown)
        return better if rng.random() < accuracy else next(c for c in shown if c != better)

    return Behaviour(f"honest({accuracy:g})", choose)


ADVERSARIAL = Behaviour("adversarial", lambda shown, better, rng: next(c for c in shown if c != better))
ALWAYS_LEFT = Behaviour("always_left", lambda shown, better, rng: shown[0], time_ms=(800, 1500))
RANDOM_CLICKER = Behaviour("random", lambda shown, better, rng: rng.choice(shown), time_ms=(600, 1400))


def simulate_labelling(
    *, project: Project, annotators: Mapping[int, Behaviour], better: Mapping[int, int], seed: int = 0
) -> int:
    """Let every annotator label until the queue has nothing left for anyone (round-robin, one task each turn);
    ``better`` maps comparison id → its truly better candidate. Returns the number of judgments written."""
    rng = random.Random(seed)
    written = 0
    active = list(annotators)
    while active:
        for annotator_id in list(active):
            claim = comparison_claim(project_id=project.pk, annotator_id=annotator_id)
            if claim is None:
                active.remove(annotator_id)
                continue
            comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
            shown = list(comparison.candidate_ids)
            rng.shuffle(shown)
            behaviour = annotators[annotator_id]
            choice = behaviour.choose(shown, better.get(comparison.pk), rng)
            answer = JudgmentInput(winner=choice, shown_order=shown, time_spent_ms=rng.randint(*behaviour.time_ms))
            judgment_submit(
                comparison_id=comparison.pk,
                annotator_id=annotator_id,
                answer=answer,
                idempotency_key=f"sim-{comparison.pk}",
            )
            written += 1
    return written
