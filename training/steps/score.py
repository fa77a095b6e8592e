"""Step "score": every generated candidate through the reward-model ensemble (mean and disagreement).

Hands on ``ctx.outputs["scores"]``: per prompt, the (M, K) member rewards of its K candidates.
"""

from __future__ import annotations

from . import RoundContext


def run(ctx: RoundContext) -> None:
    generated = ctx.outputs["generated"]
    reward_model = ctx.outputs["reward_model"]
    k = ctx.config.candidates_per_prompt
    prompts = [prompt.text for prompt in generated.prompts for _ in range(k)]
    texts = [candidate.reward_input for row in generated.candidates for candidate in row]
    ctx.progress.phase("scoring")
    rewards = reward_model.score(prompts, texts)  # (M, P·K), prompt-major
    per_prompt = [rewards[:, i * k : (i + 1) * k] for i in range(len(generated.prompts))]  # P × (M, K)
    ctx.outputs["scores"] = per_prompt
    mean = rewards.mean(0)
    spread = rewards.std(0) if rewards.shape[0] > 1 else rewards.new_zeros(rewards.shape[1])
    ctx.metrics["generation"].update(
        {"reward_mean": round(float(mean.mean()), 4), "reward_std_over_members": round(float(spread.mean()), 4)}
    )
    ctx.progress.log(f"scored {len(texts)} candidates: mean reward {float(mean.mean()):.4f}")
