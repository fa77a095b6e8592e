"""Step "evaluate": the new policy against the one the round started from, on eval-split prompts.

One answer per prompt from each policy, sampled with the same seeds (common random numbers: the comparison's
noise is the policies' difference, not the dice), scored by the round's reward model. Metrics (on the round and
the new policy version): mean reward of each, the reward model's win rate of new over previous with a Wilson
interval, KL to the reference, mean length, and a few generations researchers can read.

Hands the head-to-head answers on ``ctx.outputs["head_to_head"]`` for the push step (people then measure the
real win rate on the same pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..prompts_source import PromptRecord, eval_prompts, round_prompts
from . import RoundContext
from .generate import generation_seed, sampling_config, sampling_origin

SAMPLES_SHOWN = 5


@dataclass
class HeadToHead:
    prompts: list[PromptRecord]
    new: list
    """One :class:`training.ml.generation.text.Generation` per prompt from the new policy…"""
    previous: list
    """… and from the policy the round started from, with the same seeds."""
    on_eval_split: bool
    sampling: dict
    """The sampling parameters of these answers (recorded in each candidate's origin)."""


def run(ctx: RoundContext) -> None:
    from training.ml.generation.text import generate_candidates, load_causal_lm
    from training.ml.policy_eval import evaluate_policy, sequence_logprobs

    config, progress = ctx.config, ctx.progress
    prompts, on_eval_split = _prompts(ctx)
    if not prompts:
        progress.log("no prompts to evaluate the new policy on")
        return
    texts = [prompt.text for prompt in prompts]
    seed = generation_seed(ctx) + 1
    # Temperature 1 and no nucleus: the answers are samples of the policies themselves, which the KL estimate
    # needs (training.ml.policy_eval) and which keeps the head-to-head about the models, not the sampler.
    sampling = replace(sampling_config(config), temperature=1.0, top_p=1.0)
    new_model, tokenizer = load_causal_lm(str(ctx.artifacts[-1]))  # exactly what will be registered
    previous_model, previous_tokenizer = load_causal_lm(ctx.outputs["current_policy"].path)

    progress.phase("generating with the new policy", at=0.05)
    new = [row[0] for row in generate_candidates(new_model, tokenizer, texts, k=1, sampling=sampling, base_seed=seed)]
    progress.phase("generating with the previous policy", at=0.4)
    previous = [
        row[0]
        for row in generate_candidates(
            previous_model, previous_tokenizer, texts, k=1, sampling=sampling, base_seed=seed
        )
    ]
    progress.phase("scoring", at=0.75)
    reference_model, reference_tokenizer = load_causal_lm(ctx.outputs["reference_path"])
    ended = [g.finish_reason == "eos" for g in new]
    metrics = evaluate_policy(
        prompts=texts,
        new_texts=[g.text for g in new],
        previous_texts=[g.text for g in previous],
        reward_model_score=ctx.outputs["reward_model"].score,
        new_logprobs=sequence_logprobs(new_model, tokenizer, texts, [g.text for g in new], end_with_eos=ended),
        reference_logprobs=sequence_logprobs(
            reference_model, reference_tokenizer, texts, [g.text for g in new], end_with_eos=ended
        ),
        token_counts=[g.token_count for g in new],
    )
    metrics["prompts"] = len(prompts)
    metrics["eval_split"] = on_eval_split
    metrics["samples"] = [
        {"prompt": p.text, "new": n.text, "previous": o.text}
        for p, n, o in zip(prompts[:SAMPLES_SHOWN], new, previous, strict=False)
    ]
    ctx.metrics["policy"] = metrics
    ctx.outputs["head_to_head"] = HeadToHead(
        prompts,
        new,
        previous,
        on_eval_split,
        sampling_origin(sampling.max_new_tokens, sampling.temperature, sampling.top_p),
    )
    progress.log(_summary(metrics))


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
