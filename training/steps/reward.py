"""Step "reward": train and evaluate the reward model (and the span model) on the round's judgments.

In a ``policy`` round the reward model is retrained only when judgments arrived since the active reward version
was trained; otherwise the active version is loaded and used as it is.

Hands on ``ctx.outputs["reward_model"]`` (a :class:`training.ml.reward.RewardModel`) and, when it trained, stages
the registration of the new reward (and span) version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from annotation.quality.exclusions import training_weights

from .. import registry
from ..backbone_policy import backbone_for_loading
from ..errors import NothingToTrain
from ..judgments_source import judgment_records, span_categories, span_examples
from ..models import ModelKind
from ..progress import fmt
from ..registry import code_version, should_activate
from . import RoundContext

# Where each phase starts, as a fraction of the step (training fills the range between "training" and the next).
PHASES = {"reading judgments": 0.01, "building pairs": 0.03, "training": 0.05, "evaluating": 0.9, "saving": 0.95}
# With a span model, holistic training ends earlier and the span model takes the range after it.
SPAN_PHASES = {"evaluating": 0.55, "training": 0.6}


def run(ctx: RoundContext) -> None:
    if ctx.round.kind == ModelKind.POLICY and _reuse_active(ctx):
        return
    config, progress = ctx.config, ctx.progress
    # Checked again here, on the resolved path: the folder or a symlink may have changed since the start.
    backbone = backbone_for_loading(config.backbone)

    progress.phase("reading judgments", at=PHASES["reading judgments"])
    records = judgment_records(project_id=ctx.project_id, max_judgment_id=ctx.round.judgment_max_id)
    categories = span_categories(ctx.round.project) if config.span_rewards and ctx.modality.span_rewards else ()
    marked = span_examples(project_id=ctx.project_id, max_judgment_id=ctx.round.judgment_max_id, categories=categories)
    if categories and not marked:
        progress.log("the schema has span categories but no judgment has span marks yet: no span model")

    progress.phase("building pairs", at=PHASES["building pairs"])
    pairs = _build_pairs(ctx, records)

    progress.phase("training", at=PHASES["training"])
    progress.train_range = (PHASES["training"], SPAN_PHASES["evaluating"] if marked else PHASES["evaluating"])
    model, train_seconds = _train(ctx, pairs, backbone)

    progress.phase("evaluating", at=progress.train_range[1])
    metrics = _evaluate(ctx, model, pairs, train_seconds)
    metrics["weighting"] = ctx.metrics["weighting"]
    activate = should_activate(config, metrics["eval"], metrics["previous_eval"], key="accuracy")
    del metrics["previous_eval"]

    span = _train_span_model(ctx, categories=categories, rows=marked, splits=pairs.prompt_splits, backbone=backbone)

    progress.phase("saving", at=PHASES["saving"])
    relpath = _save(ctx, model, span)
    ctx.outputs["reward_model"] = model
    ctx.metrics.update(metrics)

    def register(ctx: RoundContext) -> None:
        version = registry.version_register(
            project_id=ctx.project_id,
            kind=ModelKind.REWARD,
            base_model=config.backbone,
            artifact_path=relpath,
            metrics=metrics,
            config=config.snapshot(),
            judgment_snapshot_id=pairs.snapshot_id,
            judgment_count=len(pairs.train_judgment_ids),  # trained from; held-out ones are in metrics["judgments"]
            judgment_max_id=ctx.round.judgment_max_id,
            activate=activate,
        )
        ctx.versions[ModelKind.REWARD] = version
        ctx.metrics["reward_version"] = {"id": version.pk, "version": version.version, "active": activate}
        ctx.progress.log(f"registered {version}" + (" (active)" if activate else " (not activated)"))
        if span is not None:
            _register_span(ctx, span)

    ctx.stage(register)


def _reuse_active(ctx: RoundContext) -> bool:
    """Load the active reward version instead of training when no judgment arrived since it was trained."""
    active = registry.active_version(project_id=ctx.project_id, kind=ModelKind.REWARD)
    if active is None or (active.judgment_max_id or 0) < (ctx.round.judgment_max_id or 0):
        return False
    ctx.progress.phase("loading the active reward model")
    ctx.outputs["reward_model"] = ctx.modality.reward_load(registry.artifact_location(active))
    ctx.metrics.update({"eval": (active.metrics or {}).get("eval"), "reward_reused": True})
    ctx.metrics["reward_version"] = {"id": active.pk, "version": active.version, "active": True}
    ctx.progress.log(f"no new judgments since {active}: using it as it is")
    return True


def _build_pairs(ctx: RoundContext, records):
    from training.ml.pairs import build_preference_pairs

    config = ctx.config
    weighting = training_weights(project_id=ctx.project_id, use_reliability=config.annotator_weighting == "reliability")
    pairs = build_preference_pairs(
        records,
        tie_policy=config.tie_policy,
        use_strength_margin=config.use_strength_margin,
        eval_fraction=config.eval_fraction,
        seed=ctx.seed,
        annotator_weights=weighting["weights"],
    )
    ctx.metrics["weighting"] = _weighting_metrics(weighting)
    ctx.progress.log(f"annotator weighting: {ctx.metrics['weighting']['summary']}")
    ctx.progress.log(
        f"{len(records)} judgments → {len(pairs.train)} train / {len(pairs.eval)} eval pairs "
        f"(snapshot {pairs.snapshot_id}; {pairs.stats.get('gold_excluded', 0)} gold excluded)"
    )
    if len(pairs.train) < config.min_train_pairs:
        raise NothingToTrain(f"Only {len(pairs.train)} training pairs (min_train_pairs is {config.min_train_pairs}).")
    ctx.outputs["pairs"] = pairs
    return pairs


def _weighting_metrics(weighting: dict) -> dict:
    """What the round's registered metrics say about its annotator weights: the scheme, who was excluded (by id
    and name), and the weights used."""
    names = dict(get_user_model().objects.filter(pk__in=weighting["weights"]).values_list("pk", "username"))
    excluded = [{"id": pk, "username": names.get(pk, "")} for pk in weighting["excluded"]]
    summary = weighting["scheme"]
    if excluded:
        summary += ": excluded " + ", ".join(e["username"] or str(e["id"]) for e in excluded)
    return {
        "scheme": weighting["scheme"],
        "excluded_annotators": excluded,
        "weights": {names.get(pk, str(pk)): round(w, 4) for pk, w in sorted(weighting["weights"].items())},
        "summary": summary,
    }


def _train(ctx: RoundContext, pairs, backbone):
    started = time.monotonic()
    model = ctx.modality.reward_train(
        pairs, backbone=backbone, settings=ctx.config.snapshot(), seed=ctx.seed, progress=ctx.progress.training_step
    )
    return model, time.monotonic() - started


def _evaluate(ctx: RoundContext, model, pairs, train_seconds: float) -> dict:
    from training.ml.evaluate import compare_metrics

    progress = ctx.progress
    eval_metrics = ctx.modality.reward_evaluate(model, pairs.eval) if pairs.eval else None
    previous = registry.active_version(project_id=ctx.project_id, kind=ModelKind.REWARD)
    previous_eval = (previous.metrics or {}).get("eval") if previous else None
    eval_missing = None
    if eval_metrics:
        progress.log(_accuracy_line(eval_metrics))
    else:
        eval_missing = no_held_out_reason(pairs, eval_fraction=ctx.config.eval_fraction)
        progress.log(f"no held-out pairs: {eval_missing}")
    return {
        "eval": eval_metrics,
        "eval_missing": eval_missing,
        "vs_previous": compare_metrics(eval_metrics, previous_eval) if eval_metrics else {},
        "previous_version": previous.version if previous else None,
        "previous_eval": previous_eval,
        "pairs": pairs.stats,
        # The artifact lists them too: judgment_ids.txt (trained from) and eval_judgment_ids.txt (held out).
        "judgments": {"train": len(pairs.train_judgment_ids), "eval": len(pairs.eval_judgment_ids)},
        "train": {"seconds": round(train_seconds, 2), "steps": progress.train_total, "final_loss": progress.loss},
    }


def no_held_out_reason(pairs, *, eval_fraction: float) -> str:
    """Why a round evaluated nothing, in words an admin can act on (shown with the round's metrics)."""
    explicit = any(side == "eval" for side in pairs.prompt_splits.values())
    judged = len(pairs.prompt_splits)
    if explicit:
        return (
            "the judged prompts marked 'eval' gave no pairs (their judgments were ties, dropped by tie_policy, "
            "or gold checks): judge more eval prompts or set tie_policy to 'soft'"
        )
    if eval_fraction == 0:
        return f"eval_fraction is 0 and none of the {judged} judged prompts is marked 'eval'"
    return (
        f"none of the {judged} judged prompts is marked 'eval', and none fell in the eval_fraction "
        f"({eval_fraction:g}) held out by hash: judge prompts of the eval split, or raise eval_fraction"
    )


def _accuracy_line(metrics: dict) -> str:
    """Held-out accuracy with its interval and the baselines beside it, saying so when the model does not beat one."""
    low, high = metrics.get("accuracy_ci") or (None, None)
    line = f"held-out accuracy {fmt(metrics.get('accuracy'))} [{fmt(low)}, {fmt(high)}] on {metrics['n_pairs']} pairs"
    beaten_by = []
    for name, baseline in (metrics.get("baselines") or {}).items():
        if baseline is None:
            continue
        line += f"; {name}-only ({baseline['rule']}) {fmt(baseline['accuracy'])}"
        if baseline["model_accuracy"] <= baseline["accuracy"]:
            beaten_by.append(f"{name}-only")
    if beaten_by:
        line += f" — the model does NOT beat the {' and '.join(beaten_by)} baseline"
    return line


def _save(ctx: RoundContext, model, span: _Span | None) -> str:
    extra = {"round": ctx.round.pk, "project": ctx.project_id, "code_version": code_version()}
    relpath, path = ctx.new_artifact(ModelKind.REWARD)
    ctx.modality.reward_save(model, path, extra=extra)
    if span is not None:
        from training.ml.span_rewards import save_span_reward_model

        span.relpath, span_path = ctx.new_artifact(ModelKind.SPAN)
        save_span_reward_model(span.model, span_path, extra={**extra, "judgment_snapshot_id": span.snapshot_id})
    return relpath


# --- the span model ------------------------------------------------------------------------------------------------


@dataclass
class _Span:
    """A trained and evaluated span-reward model, waiting to be saved and registered with the round's result."""

    model: object
    metrics: dict
    snapshot_id: str
    judgment_count: int
    activate: bool
    relpath: str = ""


def _train_span_model(ctx: RoundContext, *, categories, rows, splits, backbone) -> _Span | None:
    """Train and evaluate the span-reward model on the marked texts, split by prompt exactly like the pairs."""
    if not rows:
        return None
    from training.ml.evaluate import compare_metrics
    from training.ml.pairs import snapshot_id_for
    from training.ml.span_rewards import SpanRewardConfig, segment_metrics, train_span_reward_model

    progress, config = ctx.progress, ctx.config
    train = [row for row in rows if splits.get(row.prompt_id) != "eval"]
    held_out = [row for row in rows if splits.get(row.prompt_id) == "eval"]
    progress.log(f"span marks: {len(train)} train / {len(held_out)} eval texts, categories {', '.join(categories)}")
    if not train:
        # Early in a project the few marked texts may all sit on held-out prompts; that is no reason to fail
        # the reward model's round.
        progress.log("every text with span marks is on a held-out prompt: no span model this round")
        return None
    progress.phase("training span model", at=SPAN_PHASES["training"])
    progress.train_range = (SPAN_PHASES["training"], PHASES["evaluating"])
    span_config = SpanRewardConfig(
        backbone=backbone,
        categories=tuple(categories),
        max_length=config.max_length,
        learning_rate=config.span_learning_rate,
        num_epochs=config.span_epochs,
        batch_size=config.batch_size,
        seed=ctx.seed,
    )
    started = time.monotonic()
    model = train_span_reward_model([row.example for row in train], span_config, progress=progress.training_step)
    train_seconds = time.monotonic() - started
    progress.phase("evaluating span model", at=PHASES["evaluating"])
    eval_metrics = segment_metrics(model, [row.example for row in held_out]) if held_out else None
    if eval_metrics:
        never, always = eval_metrics["baselines"]["never_flag"], eval_metrics["baselines"]["always_flag"]
        progress.log(
            f"span model: held-out segment F1 {fmt(eval_metrics['f1'])}, accuracy {fmt(eval_metrics['accuracy'])} "
            f"on {eval_metrics['n']} decisions; never flag: F1 {fmt(never['f1'])}, accuracy {fmt(never['accuracy'])}; "
            f"always flag: F1 {fmt(always['f1'])}"
        )
    # Like the reward model's no-regression rule, but against doing nothing: a span model whose held-out F1 is not
    # above the trivial models' (or that has no held-out texts to show it) is registered, never activated.
    beats_baselines = bool(eval_metrics and eval_metrics.get("beats_baselines"))
    if not beats_baselines:
        progress.log("span model: not activated — it does not beat never/always flagging on held-out F1")
    previous = registry.active_version(project_id=ctx.project_id, kind=ModelKind.SPAN)
    previous_eval = (previous.metrics or {}).get("eval") if previous else None
    judgment_ids = sorted({row.judgment_id for row in rows})
    trained_from, evaluated_on = {row.judgment_id for row in train}, {row.judgment_id for row in held_out}
    return _Span(
        model=model,
        snapshot_id=snapshot_id_for(judgment_ids),
        judgment_count=len(trained_from),  # as for the reward model: the held-out ones are counted apart
        activate=beats_baselines and should_activate(config, eval_metrics, previous_eval, key="f1"),
        metrics={
            "eval": eval_metrics,
            "vs_previous": compare_metrics(eval_metrics, previous_eval) if eval_metrics else {},
            "previous_version": previous.version if previous else None,
            "examples": {"train": len(train), "eval": len(held_out), "categories": list(categories)},
            "judgments": {"train": len(trained_from), "eval": len(evaluated_on)},
            "train": {"seconds": round(train_seconds, 2), "steps": progress.train_total, "final_loss": progress.loss},
        },
    )


def _register_span(ctx: RoundContext, span: _Span) -> None:
    version = registry.version_register(
        project_id=ctx.project_id,
        kind=ModelKind.SPAN,
        base_model=ctx.config.backbone,
        artifact_path=span.relpath,
        metrics=span.metrics,
        config=ctx.config.snapshot(),
        judgment_snapshot_id=span.snapshot_id,
        judgment_count=span.judgment_count,
        judgment_max_id=ctx.round.judgment_max_id,
        activate=span.activate,
    )
    ctx.versions[ModelKind.SPAN] = version
    ctx.progress.log(f"registered {version}" + (" (active)" if span.activate else " (not activated)"))
    ctx.metrics["span"] = {
        "model_version": version.pk,
        "version": version.version,
        "eval": span.metrics["eval"],
        "examples": span.metrics["examples"],
    }
