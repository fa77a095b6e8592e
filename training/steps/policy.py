"""Step "optimise": preference-optimise the generator through the project's modality, by ``policy_algorithm``:

- ``dpo``: pairs are, for every generated prompt, the best against the worst of its K candidates by ensemble-mean
  reward (RLHF Workflow / West-of-N), plus — with ``human_pairs`` — the train-split pairs people judged since the
  last policy round (text: TRL's ``DPOTrainer`` with LoRA and the configured ``loss_type``; images:
  Diffusion-DPO with LoRA);
- ``rloo`` (text): TRL's ``RLOOTrainer`` on the round's prompts, with the reward model's ensemble mean as reward.

The reference is the base model or the policy the round started from.

Saves the new policy's artifact (its manifest lists the pairs it saw) and stages its registration (active once
the round commits, if ``auto_activate``); hands on ``ctx.outputs["policy_path"]`` and
``ctx.outputs["reference_path"]``.
"""

from __future__ import annotations

from training.ml.modality import OutputPair

from .. import registry
from ..judgments_source import judgment_records
from ..models import ModelKind, Round, RoundStatus
from ..registry import code_version
from . import RoundContext
from .generate import base_policy_path


def run(ctx: RoundContext) -> None:
    config, progress = ctx.config, ctx.progress
    current = ctx.outputs["current_policy"]
    reference = base_policy_path(ctx) if config.reference == "base" and current.version else None
    pairs = []
    if config.policy_algorithm == "dpo":
        progress.phase("selecting pairs")
        pairs = rm_pairs(ctx) + (human_pairs(ctx) if config.human_pairs else [])
        progress.log(f"{_count(pairs, 'rm')} best-vs-worst pairs from the reward model, {_count(pairs, 'human')} human")
        if not pairs:
            raise ValueError("No preference pairs for the policy: every prompt's candidates scored the same.")
    progress.phase("training", at=0.05)
    progress.train_range = (0.05, 0.9)
    trained = ctx.modality.optimise(
        start=current.path,
        reference=reference,
        pairs=pairs,
        prompts=[p.text for p in ctx.outputs["generated"].prompts],
        reward_score=ctx.outputs["reward_model"].score,
        settings=config.snapshot(),
        seed=ctx.seed,
        progress=progress.training_step,
    )
    ctx.outputs["reference_path"] = reference or current.path

    progress.phase("saving", at=0.9)
    relpath, path = ctx.new_artifact(ModelKind.POLICY)
    extra = {
        "round": ctx.round.pk,
        "project": ctx.project_id,
        "code_version": code_version(),
        "judgment_max_id": ctx.round.judgment_max_id,
        "pairs": [_provenance(pair) for pair in pairs],
    }
    ctx.modality.save(trained, path, extra=extra)
    ctx.outputs["policy_path"] = str(path)
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
            judgment_count=_count(pairs, "human"),
            judgment_max_id=ctx.round.judgment_max_id,
            activate=activate,
        )
        ctx.versions[ModelKind.POLICY] = version
        ctx.metrics["policy_version"] = {"id": version.pk, "version": version.version, "active": activate}
        ctx.progress.log(f"registered {version}" + (" (active)" if activate else " (not activated)"))

    ctx.stage(register)


def _provenance(pair: OutputPair) -> dict:
    """What reproduces a training pair: the prompt and, for generated outputs, their seeds (with the round's
    sampling and the starting policy they regenerate it); human pairs come from the judgments up to
    ``judgment_max_id``."""
    if pair.source == "human":
        return {"prompt": pair.prompt, "source": "human"}
    return {
        "prompt": pair.prompt,
        "source": pair.source,
        "chosen_seed": pair.chosen.seed,
        "rejected_seed": pair.rejected.seed,
    }


def _count(pairs, source: str) -> int:
    return sum(p.source == source for p in pairs)


def rm_pairs(ctx: RoundContext) -> list[OutputPair]:
    """Best against worst of K by ensemble-mean reward, for every prompt whose candidates differ."""
    from training.ml.selection import select_best_worst

    generated, scores = ctx.outputs["generated"], ctx.outputs["scores"]
    chosen = select_best_worst([member_rewards.mean(0).tolist() for member_rewards in scores])
    return [
        OutputPair(
            prompt=generated.prompts[p].text,
            chosen=generated.candidates[p][best],
            rejected=generated.candidates[p][worst],
            source="rm",
        )
        for p, best, worst, _gap in chosen
    ]


def human_pairs(ctx: RoundContext) -> list[OutputPair]:
    """Train-split pairs from the judgments that arrived since the last successful policy round (all of them
    before the first), split exactly like the reward model's pairs."""
    from training.ml.pairs import build_preference_pairs

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
    return ctx.modality.human_pairs(pairs)
