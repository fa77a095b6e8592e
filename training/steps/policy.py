"""Step "optimise": preference-optimise the policy (``training.ml.policy``), by ``policy_algorithm``:

- ``dpo``: pairs are, for every generated prompt, the best against the worst of its K candidates by ensemble-mean
  reward (RLHF Workflow / West-of-N), plus — with ``human_pairs`` — the train-split pairs people judged since the
  last policy round; TRL's ``DPOTrainer`` with LoRA and the configured ``loss_type``.
- ``rloo``: TRL's ``RLOOTrainer`` on the round's prompts, with the reward model's ensemble mean as the reward.

The reference is the base model or the policy the round started from.

Saves the new policy's artifact and stages its registration (active once the round commits, if
``auto_activate``); hands on ``ctx.outputs["policy_model"]`` and ``ctx.outputs["reference_path"]``.
"""

from __future__ import annotations

from .. import registry
from ..judgments_source import judgment_records
from ..models import ModelKind, Round, RoundStatus
from ..registry import code_version
from . import RoundContext
from .generate import base_policy_path


def run(ctx: RoundContext) -> None:
    from training.ml.policy import PolicyTrainingConfig, save_policy

    config, progress = ctx.config, ctx.progress
    current = ctx.outputs["current_policy"]
    reference = base_policy_path(ctx) if config.reference == "base" and current.version else None
    ml_config = PolicyTrainingConfig(
        model=current.path,
        reference=reference,
        algorithm=config.policy_algorithm,
        loss_type=config.loss_type,
        beta=config.beta,
        label_smoothing=config.label_smoothing,
        learning_rate=config.policy_learning_rate,
        num_epochs=config.policy_epochs,
        max_steps=config.policy_max_steps,
        batch_size=config.policy_batch_size,
        max_length=config.policy_max_length,
        lora_r=config.policy_lora_r,
        seed=ctx.seed,
        bf16=config.bf16,
        num_generations=config.candidates_per_prompt,
        max_completion_length=config.max_new_tokens,
    )
    if config.policy_algorithm == "rloo":
        trained, human = _train_rloo(ctx, ml_config), 0
    else:
        trained, human = _train_dpo(ctx, ml_config)
    ctx.outputs["policy_model"] = trained
    ctx.outputs["reference_path"] = reference or current.path

    progress.phase("saving", at=0.9)
    relpath, path = ctx.new_artifact(ModelKind.POLICY)
    save_policy(trained, path, extra={"round": ctx.round.pk, "project": ctx.project_id, "code_version": code_version()})
    ctx.metrics["policy_train"] = trained.metrics

    def register(ctx: RoundContext) -> None:
        activate = config.auto_activate
        version = registry.version_register(
            project_id=ctx.project_id,
            kind=ModelKind.POLICY,
            base_model=config.policy,
            artifact_path=relpath,
            metrics={key: ctx.metrics.get(key) for key in ("policy", "policy_train", "generation")},
            config=config.snapshot(),
            judgment_snapshot_id=f"round-{ctx.round.pk}",
            judgment_count=human,
            judgment_max_id=ctx.round.judgment_max_id,
            activate=activate,
        )
        ctx.versions[ModelKind.POLICY] = version
        ctx.metrics["policy_version"] = {"id": version.pk, "version": version.version, "active": activate}
        ctx.progress.log(f"registered {version}" + (" (active)" if activate else " (not activated)"))

    ctx.stage(register)


def _train_dpo(ctx: RoundContext, ml_config):
    """DPO on best-vs-worst pairs (and human pairs); returns the trained policy and how many human pairs it saw."""
    from training.ml.policy import train_policy

    progress = ctx.progress
    progress.phase("selecting pairs")
    pairs = rm_pairs(ctx) + (human_pairs(ctx) if ctx.config.human_pairs else [])
    n_rm = sum(p.source == "rm" for p in pairs)
    progress.log(f"{n_rm} best-vs-worst pairs from the reward model, {len(pairs) - n_rm} human pairs")
    if not pairs:
        raise ValueError("No preference pairs for the policy: every prompt's candidates scored the same.")
    progress.phase("training", at=0.05)
    progress.train_range = (0.05, 0.9)
    return train_policy(pairs, ml_config, progress=progress.training_step), len(pairs) - n_rm


def _train_rloo(ctx: RoundContext, ml_config):
    """RLOO on the round's prompts with the reward model's ensemble mean as the reward."""
    from dataclasses import replace

    from training.ml.policy import train_policy_rloo

    reward_model = ctx.outputs["reward_model"]
    prompts = [p.text for p in ctx.outputs["generated"].prompts]
    # RLOO's batch counts completions: policy_batch_size prompts, K samples each.
    ml_config = replace(
        ml_config, algorithm="rloo", batch_size=ctx.config.policy_batch_size * ctx.config.candidates_per_prompt
    )
    ctx.progress.phase("training", at=0.05)
    ctx.progress.train_range = (0.05, 0.9)
    return train_policy_rloo(
        prompts,
        lambda p, c: reward_model.score(p, c).mean(0).tolist(),
        ml_config,
        progress=ctx.progress.training_step,
    )


def rm_pairs(ctx: RoundContext) -> list:
    """Best against worst of K by ensemble-mean reward, for every prompt whose candidates differ."""
    from training.ml.policy import PolicyPair
    from training.ml.selection import select_best_worst

    generated, scores = ctx.outputs["generated"], ctx.outputs["scores"]
    chosen = select_best_worst([member_rewards.mean(0).tolist() for member_rewards in scores])
    return [
        PolicyPair(
            prompt=generated.prompts[p].text,
            chosen=generated.candidates[p][best].text,
            rejected=generated.candidates[p][worst].text,
            source="rm",
        )
        for p, best, worst, _gap in chosen
    ]


def human_pairs(ctx: RoundContext) -> list:
    """Train-split pairs from the judgments that arrived since the last successful policy round (all of them
    before the first), split exactly like the reward model's pairs."""
    from training.ml.pairs import build_preference_pairs
    from training.ml.policy import PolicyPair

    since = (
        Round.objects.filter(project_id=ctx.project_id, kind=ModelKind.POLICY, status=RoundStatus.SUCCEEDED)
        .exclude(pk=ctx.round.pk)
        .order_by("-id")
        .values_list("judgment_max_id", flat=True)
        .first()
    ) or 0
    records = [
        r
        for r in judgment_records(project_id=ctx.project_id, max_judgment_id=ctx.round.judgment_max_id)
        if r.judgment_id > since
    ]
    pairs = build_preference_pairs(
        records, tie_policy="drop", eval_fraction=ctx.config.eval_fraction, seed=ctx.seed
    ).train
    return [PolicyPair(prompt=p.prompt, chosen=p.chosen, rejected=p.rejected, source="human") for p in pairs]
