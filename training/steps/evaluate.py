"""Step "evaluate": the new policy against the one the round started from, on eval-split prompts.

One answer per prompt from each policy, sampled with the same seeds (common random numbers: the comparison's
noise is the policies' difference, not the dice), scored by the round's reward model. Metrics (on the round and
the new policy version): mean reward of each, the reward model's win rate of new over previous with a Wilson
interval, KL to the reference, mean length, and a few generations researchers can read.

Hands the head-to-head answers on ``ctx.outputs["head_to_head"]`` for the push step (people then measure the
real win rate on the same pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..prompts_source import PromptRecord, eval_prompts, round_prompts
from . import RoundContext
from .generate import generation_seed

SAMPLES_SHOWN = 5


@dataclass
class HeadToHead:
    prompts: list[PromptRecord]
    new: list
    """One :class:`training.ml.modality.Output` per prompt from the new policy…"""
    previous: list
    """… and from the policy the round started from, with the same seeds."""
    sampling: dict
    """The sampling parameters of these answers (recorded in each candidate's origin)."""


def run(ctx: RoundContext) -> None:
    progress = ctx.progress
    prompts, on_eval_split = _prompts(ctx)
    if not prompts:
        progress.log("no prompts to evaluate the new policy on")
        return
    evaluation = ctx.modality.evaluate(
        new=ctx.outputs["policy_path"],  # exactly what will be registered
        previous=ctx.outputs["current_policy"].path,
        reference=ctx.outputs["reference_path"],
        prompts=[prompt.text for prompt in prompts],
        reward_score=ctx.outputs["reward_model"].score,
        settings=ctx.config.snapshot(),
        base_seed=generation_seed(ctx) + 1,
        progress=lambda name, at: progress.phase(name, at=at),
    )
    metrics = {**evaluation.metrics, "prompts": len(prompts), "eval_split": on_eval_split}
    metrics["samples"] = [
        {"prompt": p.text, "new": _readable(n), "previous": _readable(o)}
        for p, n, o in zip(prompts[:SAMPLES_SHOWN], evaluation.new, evaluation.previous, strict=False)
    ]
    ctx.metrics["policy"] = metrics
    ctx.outputs["head_to_head"] = HeadToHead(prompts, evaluation.new, evaluation.previous, evaluation.sampling)
    progress.log(_summary(metrics))


def _readable(output) -> str:
    return output.text if output.media is None else f"[{output.mime_type}, {len(output.media)} bytes]"


def _prompts(ctx: RoundContext) -> tuple[list[PromptRecord], bool]:
    prompts = eval_prompts(project_id=ctx.project_id, count=ctx.config.eval_prompts)
    if prompts or not ctx.config.eval_prompts:
        return prompts, True
    # No prompt is marked eval: compare on train prompts this round did not generate for, and say so.
    used = {p.prompt_id for p in ctx.outputs["generated"].prompts}
    spare = round_prompts(
        project_id=ctx.project_id,
        count=ctx.config.eval_prompts + len(used),
        selection="random",
        seed=ctx.seed + 1,
    )
    ctx.progress.log("no eval-split prompts: the head-to-head uses train prompts this round did not generate for")
    return [p for p in spare if p.prompt_id not in used][: ctx.config.eval_prompts], False


def _summary(metrics: dict) -> str:
    parts = [
        f"{key} {metrics[key]:.4f}" for key in ("reward_new", "reward_previous", "win_rate", "kl") if key in metrics
    ]
    return "new policy vs previous: " + ", ".join(parts)
