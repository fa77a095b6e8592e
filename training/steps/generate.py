"""Step "generate": K candidates per sampled train prompt from the current policy.

The current policy is the active ``policy`` version (its merged weights) or, before the first policy round, the
model named in ``policy``. Every candidate records its origin: the round, the policy version (0 = the base
model), the sampling parameters and its own seed, which reproduces it (``training.ml.generation.text``).

Hands on ``ctx.outputs["current_policy"]`` (path and version) and ``ctx.outputs["generated"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import registry
from ..backbone_policy import backbone_for_loading
from ..models import ModelKind
from ..prompts_source import PromptRecord, round_prompts
from . import RoundContext


@dataclass(frozen=True)
class CurrentPolicy:
    path: str
    """A local folder that ``from_pretrained`` loads."""
    version: int
    """The active policy version it is, or 0 for the base model."""


@dataclass
class Generated:
    prompts: list[PromptRecord]
    candidates: list[list]
    """Per prompt, K :class:`training.ml.modality.Output`."""
    sampling: dict
    """The sampling parameters, as recorded in each candidate's origin."""


def run(ctx: RoundContext) -> None:
    config, progress = ctx.config, ctx.progress
    current = current_policy(ctx)
    ctx.outputs["current_policy"] = current
    prompts = round_prompts(
        project_id=ctx.project_id, count=config.prompts_per_round, selection=config.prompt_selection, seed=ctx.seed
    )
    if not prompts:
        raise ValueError("The project has no train-split prompts to generate answers for.")
    progress.phase("generating")
    progress.train_range = (0.05, 1.0)
    sampling = ctx.modality.sampling(config.snapshot())
    candidates = ctx.modality.generate(
        current.path,
        [prompt.text for prompt in prompts],
        k=config.candidates_per_prompt,
        sampling=sampling,
        base_seed=generation_seed(ctx),
        batch_size=config.generation_batch_size,
        progress=progress.advance,
    )
    ctx.outputs["generated"] = Generated(prompts=prompts, candidates=candidates, sampling=sampling)
    outputs = [o for row in candidates for o in row]
    tokens = sum(o.metadata.get("tokens", 0) for o in outputs)
    progress.log(
        f"generated {config.candidates_per_prompt} candidates for each of {len(prompts)} prompts with policy "
        f"v{current.version}" + (f" ({tokens} tokens)" if tokens else "")
    )
    ctx.metrics["generation"] = {
        "prompts": len(prompts),
        "candidates_per_prompt": config.candidates_per_prompt,
        "tokens": tokens,
        "policy_version": current.version,
        "stopped_at_max_new_tokens": sum(o.metadata.get("finish_reason") == "length" for o in outputs),
    }


def current_policy(ctx: RoundContext) -> CurrentPolicy:
    active = registry.active_version(project_id=ctx.project_id, kind=ModelKind.POLICY)
    if active is not None:
        return CurrentPolicy(str(registry.artifact_location(active)), active.version)
    return CurrentPolicy(base_policy_path(ctx), 0)


def base_policy_path(ctx: RoundContext) -> str:
    from training.ml.backbones import resolve_backbone

    return resolve_backbone(backbone_for_loading(ctx.config.policy))


def generation_seed(ctx: RoundContext) -> int:
    """Seeds differ from round to round but not between attempts of one round (a resumed round redoes the same)."""
    return (ctx.seed * 1_000_003 + ctx.round.pk * 7919) % (2**31)
