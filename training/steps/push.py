"""Step "push": new comparisons for people, staged to enter the queue when the round commits.

Two kinds, each marked with the round that made it (``Comparison.origin``):

- ``policy_vs_previous``: the evaluate step's head-to-head answers, so people measure the new policy's real win
  rate against the previous one (``training.win_rates``). Served first (priority + 1).
- ``active``: the generated pairs the reward-model ensemble disagrees on most (std over members of
  σ(r_i − r_j); with a single model, the pairs it finds closest to a coin flip), where a human label teaches the
  next reward model most.

Candidates carry their origin: round, policy version (the new one, or the one the round started from), sampling
parameters and seed. Everything goes through ``annotation.candidates`` — training's one door into annotation.
"""

from __future__ import annotations

from annotation.candidates import GeneratedCandidate, GeneratedComparison, generated_comparisons_push

from ..models import ModelKind
from . import RoundContext

ACTIVE = "active"
HEAD_TO_HEAD = "policy_vs_previous"


def run(ctx: RoundContext) -> None:
    from training.ml.selection import rank_pairs_by_disagreement

    config = ctx.config
    generated, scores = ctx.outputs["generated"], ctx.outputs["scores"]
    active = rank_pairs_by_disagreement(scores, limit=config.push_active_pairs) if config.push_active_pairs else []
    head_to_head = ctx.outputs.get("head_to_head")
    ctx.progress.log(
        f"staged {len(active)} active-selection pairs and "
        f"{len(head_to_head.prompts) if head_to_head else 0} head-to-head pairs for the queue"
    )

    def push(ctx: RoundContext) -> None:
        new_version = ctx.versions[ModelKind.POLICY].version
        current = ctx.outputs["current_policy"].version
        round_id = ctx.round.pk

        def candidate(output, policy_version: int, sampling: dict) -> GeneratedCandidate:
            origin = {"round": round_id, "policy_version": policy_version, "seed": output.seed, "sampling": sampling}
            return GeneratedCandidate(text=output.text, media=output.media, origin=origin, metadata=output.metadata)

        comparisons = []
        if head_to_head is not None:
            for prompt, new, old in zip(head_to_head.prompts, head_to_head.new, head_to_head.previous, strict=True):
                comparisons.append(
                    GeneratedComparison(
                        prompt_id=prompt.prompt_id,
                        candidates=[
                            candidate(new, new_version, head_to_head.sampling),
                            candidate(old, current, head_to_head.sampling),
                        ],
                        priority=config.push_priority + 1,
                        origin={
                            "round": round_id,
                            "purpose": HEAD_TO_HEAD,
                            "policy_version": new_version,
                            "previous_version": current,
                        },
                    )
                )
        for p, i, j, disagreement in active:
            comparisons.append(
                GeneratedComparison(
                    prompt_id=generated.prompts[p].prompt_id,
                    candidates=[
                        candidate(generated.candidates[p][i], current, generated.sampling),
                        candidate(generated.candidates[p][j], current, generated.sampling),
                    ],
                    priority=config.push_priority,
                    origin={"round": round_id, "purpose": ACTIVE, "disagreement": round(float(disagreement), 5)},
                )
            )
        result = generated_comparisons_push(
            project=ctx.round.project, batch=f"round-{round_id}", comparisons=comparisons
        )
        ctx.metrics["push"] = {
            HEAD_TO_HEAD: len(head_to_head.prompts) if head_to_head else 0,
            ACTIVE: len(active),
            "comparisons_created": result.comparisons_created,
        }
        ctx.progress.log(f"pushed {result.comparisons_created} comparisons into the queue")

    ctx.stage(push)
