"""Preference optimisation of a text policy (DPO) on (prompt, chosen, rejected) pairs, with LoRA by default.

Read top to bottom: config → pairs → TRL ``DPOTrainer`` run → :class:`PolicyModel` → atomic save / load →
sequence log-probs and DPO's implicit reward margins (for evaluation and for the KL helper).

Why TRL's ``DPOTrainer`` (TRL 1.16) and what we set:
- Pairs go in **conversational** form (``prompt`` = one user message, ``chosen`` / ``rejected`` = one assistant
  message each), so the policy's own chat template renders them; only the response tokens count in the loss.
- ``precompute_ref_log_probs=True``: the reference log-probs of every pair are computed once, before the first step,
  so no second forward per step and, for a full fine-tune, no second copy of the model in memory; the pre-pass runs
  over the pairs in length order, so its batches carry little padding.
- The fused LM head scores only the response tokens on a CPU too (TRL does so only where Triton runs).
- With LoRA and no separate reference, the reference is the policy with its adapter disabled (the starting policy),
  as TRL does; a different reference folder is loaded and passed as ``ref_model``.
- TRL's defaults that differ from ``TrainingArguments`` (``bf16=True``, gradient checkpointing on,
  ``learning_rate=1e-6``) are all set explicitly from :class:`PolicyTrainingConfig`. Nothing is written to disk:
  a temporary folder (removed after the run) holds ``output_dir`` and every ``datasets`` cache (the pairs,
  TRL's tokenized copy, the reference log-probs); no checkpoints, no reports.

Batch convention (TRL's, used by every function here): a batch of B pairs is 2B sequences, the B chosen first,
then the B rejected in the same order — ``torch.chunk(x, 2)`` gives (chosen, rejected).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from datasets import Dataset, load_from_disk
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.trainer_callback import PrinterCallback
from trl import DPOConfig, DPOTrainer

from .policy_eval import response_logprobs
from .reward import atomic_directory, quiet_trainer_args

MANIFEST = "tandem_policy.json"
"""Written beside the weights: the training config, training metrics, library versions and the caller's extra."""
ADAPTER_DIR = "adapter"
"""Subfolder of a saved policy holding the LoRA adapter (``PeftModel.from_pretrained(base, path / ADAPTER_DIR)``)."""

ALGORITHMS = ("dpo", "rloo")
"""``PolicyTrainingConfig.algorithm`` values: ``dpo`` (:func:`train_policy`), ``rloo`` (:func:`train_policy_rloo`)."""
LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
"""The ``loss_type`` names TRL 1.16's ``DPOConfig`` accepts (one at a time here; TRL can also mix several).
``test_policy.py`` checks this list against the names in ``DPOConfig``'s own help text, so an upgrade that adds or
drops one fails a test instead of failing mid-run."""

ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)``, called after every optimiser step with the step's mean loss."""


@dataclass
class PolicyTrainingConfig:
    """Everything that decides a policy-optimisation run; saved as JSON beside the checkpoint."""

    model: str
    """Folder (or cached hub id) of the policy to start from: a causal LM with a chat template. The caller resolves
    it to a local folder (the current policy's artifact); it is also the reference unless ``reference`` is set."""
    reference: str | None = None
    """Folder of the reference model π_ref; None = ``model`` (the starting policy). With LoRA that costs no extra
    memory: the reference is the policy with its adapter disabled. It must share ``model``'s tokenizer."""
    algorithm: Literal["dpo", "rloo"] = "dpo"
    """Which optimiser of the policy: ``"dpo"`` (offline, from preference pairs: :func:`train_policy`) or ``"rloo"``
    (on-policy RL with a reward function: :func:`train_policy_rloo`, TRL's ``RLOOTrainer``)."""
    loss_type: str = "sigmoid"
    """TRL's DPO loss name (:data:`LOSS_TYPES`): ``sigmoid`` is DPO, ``ipo`` IPO, ``robust`` robust DPO (uses
    ``label_smoothing``), ``hinge`` SLiC, …"""
    beta: float = 0.1
    """β: strength of the KL regularisation towards the reference (higher = stay closer); τ for IPO."""
    label_smoothing: float = 0.0
    """For ``robust``: assumed probability that a label is flipped, in [0, 0.5) (0.1 in the paper); for
    ``exo_pair``: its ε, must be > 0 (1e-3 in the paper). Ignored by the other losses."""
    learning_rate: float = 5e-5
    """Peak AdamW learning rate. 5e-5 suits LoRA; a full fine-tune (``lora_r=None``) usually wants ~5e-7..5e-6."""
    num_epochs: float = 1.0
    """Passes over the pairs."""
    max_steps: int = -1
    """If > 0, stop after this many optimiser steps (overrides ``num_epochs``)."""
    batch_size: int = 8
    """Pairs per device per micro-batch (each pair is two sequences)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimiser step."""
    warmup_ratio: float = 0.0
    """Share of the steps spent warming the learning rate up linearly (then linear decay to 0)."""
    max_length: int | None = 1024
    """Tokens per (prompt + response) sequence, cut from the END (TRL 1.16 keeps the start only): the end of a long
    response is not trained on, and a pair whose prompt alone reaches ``max_length`` is DROPPED by TRL (counted in
    ``metrics["pairs_dropped"]``). None = no limit. TRL 1.16 has no ``max_prompt_length`` any more."""
    lora_r: int | None = 8
    """LoRA rank (PEFT); None = full fine-tune of every weight."""
    lora_alpha: int = 16
    """LoRA scaling numerator: the update is (alpha / r) · B A."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input; only acts with ``disable_dropout=False``."""
    lora_target_modules: str | list[str] = "all-linear"
    """Modules that get adapters: PEFT's ``"all-linear"`` (every linear layer but the output head) or a list of
    names (``["q_proj", "v_proj"]``). The LM head cannot be one (TRL reads its weight directly)."""
    disable_dropout: bool = True
    """TRL's default: every dropout (the model's and LoRA's) is set to 0, so the policy's log-probs are as
    deterministic as the reference's."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (TRL's default is on; ours is off)."""
    seed: int = 0
    """Seeds the adapter initialisation and the data order."""
    bf16: bool = False
    """Mixed precision (bfloat16) on GPUs that support it; the weights stay float32. Slow on CPUs."""
    logging_steps: int = 10
    """TRL's logging interval, and how many final optimiser steps the reported loss / margin / accuracy average over."""
    num_generations: int = 4
    """RLOO only: completions sampled per prompt each step; each one's baseline is the mean reward of the others."""
    max_completion_length: int = 128
    """RLOO only: the bound on each sampled completion."""
    temperature: float = 1.0
    """RLOO only: sampling temperature of the completions (1.0 samples the policy itself, as the estimator assumes)."""

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; expected one of {ALGORITHMS}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {self.loss_type!r}; TRL 1.16's DPOTrainer accepts {LOSS_TYPES}")
        if self.loss_type == "robust" and not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError("loss_type='robust' needs 0 <= label_smoothing < 0.5 (a label-flip probability)")
        if self.loss_type == "exo_pair" and not 0.0 < self.label_smoothing < 1.0:
            raise ValueError("loss_type='exo_pair' needs 0 < label_smoothing < 1 (its ε; 1e-3 in the paper)")
        if self.beta < 0 or (self.beta == 0 and self.algorithm == "dpo"):
            raise ValueError("beta must be > 0 (>= 0 for rloo, where 0 drops the KL term)")
        if self.lora_dropout > 0 and self.disable_dropout:
            raise ValueError("lora_dropout > 0 has no effect while disable_dropout=True (TRL zeroes every dropout)")


@dataclass(frozen=True)
class PolicyPair:
    """One preference observation for policy optimisation: ``chosen`` is the better answer to ``prompt``."""

    prompt: str
    """The user message (one turn); the policy's chat template wraps it."""
    chosen: str
    """The preferred assistant response."""
    rejected: str
    """The other assistant response."""
    weight: float = 1.0
    """Relative weight of the pair. DPO in TRL 1.16 has no per-pair loss weight, so unequal weights are honoured by
    sampling: pairs are drawn with replacement with probability ∝ weight (same number of draws per epoch)."""
    source: Literal["human", "rm"] = "human"
    """Where the label came from: an annotator (``"human"``) or a reward model (``"rm"``); counted in the metrics."""


# --- training -----------------------------------------------------------------------------------------------------


def train_policy(
    pairs: Sequence[PolicyPair], config: PolicyTrainingConfig, *, progress: ProgressFn | None = None
) -> PolicyModel:
    """Optimise the policy in ``config.model`` on ``pairs`` with ``config.algorithm`` and return it.

    Nothing is downloaded unless ``config.model`` is a hub id that is not cached (``HF_HUB_OFFLINE=1`` forbids that).
    """
    if config.algorithm != "dpo":
        raise ValueError(
            f"train_policy trains from pairs (dpo); {config.algorithm} takes prompts and a reward function"
        )
    if not pairs:
        raise ValueError("no training pairs")
    if any(p.weight < 0 for p in pairs) or not any(p.weight > 0 for p in pairs):
        raise ValueError("pair weights must be >= 0 with at least one > 0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL pings the hub from every trainer otherwise
    return _train_dpo(list(pairs), config, progress)


def _conversations(pairs: Sequence[PolicyPair]) -> Dataset:
    """TRL's conversational preference format: one row per pair, messages as role/content dicts."""
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": p.prompt}] for p in pairs],
            "chosen": [[{"role": "assistant", "content": p.chosen}] for p in pairs],
            "rejected": [[{"role": "assistant", "content": p.rejected}] for p in pairs],
            "weight": [float(p.weight) for p in pairs],
        }
    )


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The policy's tokenizer with a pad token (eos if none, as TRL does); fails clearly without a chat template."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.chat_template is None:
        raise ValueError(f"{path}: the tokenizer has no chat template; policy training needs a chat (instruct) model")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class _TandemDPOTrainer(DPOTrainer):
    """``DPOTrainer`` that records each micro-batch's loss and reward metrics, and samples by pair weight."""

    def __init__(self, *args, **kwargs):
        self.micro_batches: list[dict[str, float]] = []
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if self.model.training:
            loss = out[0] if return_outputs else out
            logged = self._metrics["train"]  # TRL appended this micro-batch's values just now
            self.micro_batches.append(
                {
                    "loss": loss.item(),
                    "margin": logged["rewards/margins"][-1],
                    "accuracy": logged["rewards/accuracies"][-1],
                }
            )
        return out

    def _precompute_ref_logps(self, dataset, name, batch_size):
        # TRL batches the reference pre-pass in dataset order, so every batch pads to its longest pair (a third of
        # the pre-pass's tokens on hh-rlhf pairs). Run it in length order and hand the rows back in their own order.
        columns = zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"], strict=True)
        lengths = [len(prompt) + max(len(chosen), len(rejected)) for prompt, chosen, rejected in columns]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        by_length = super()._precompute_ref_logps(dataset.select(order).flatten_indices(), name, batch_size)
        position = {index: rank for rank, index in enumerate(order)}
        return by_length.select([position[index] for index in range(len(order))]).flatten_indices()

    def _get_train_sampler(self, train_dataset=None):
        # Trainer passes the dataset with its unused columns (our "weight") already removed; the rows, and their
        # order, are those of self.train_dataset.
        full = self.train_dataset
        weights = list(full["weight"]) if "weight" in full.column_names else None
        if weights is None or len(set(weights)) <= 1:
            return super()._get_train_sampler(train_dataset)
        # Expected loss under this sampler = the weight-averaged DPO loss; seeded so a run is reproducible.
        generator = torch.Generator().manual_seed(self.args.seed)
        return torch.utils.data.WeightedRandomSampler(weights, len(weights), replacement=True, generator=generator)


class _StepRecorder(TrainerCallback):
    """Averages the micro-batches of each optimiser step into one record, and reports it to ``progress``."""

    def __init__(self, trainer: _TandemDPOTrainer, progress: ProgressFn | None):
        self.trainer, self.progress = trainer, progress
        self.steps: list[dict[str, float]] = []

    def on_step_end(self, args, state, control, **kwargs):
        batches = self.trainer.micro_batches
        record = {
            key: sum(b[key] for b in batches) / len(batches) if batches else math.nan
            for key in ("loss", "margin", "accuracy")
        }
        batches.clear()
        self.steps.append(record)
        if self.progress is not None:
            self.progress(state.global_step, state.max_steps, record["loss"])


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide ``datasets``' progress bars (TRL maps the pairs three times) and restore the caller's setting."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


@contextlib.contextmanager
def _lm_head_scores_completions_only() -> Iterator[None]:
    """TRL's fused LM head projects only the positions that carry a label (the response tokens) on devices with
    Triton, and every position elsewhere, for the sake of Neuron's compiler. On a CPU that spends most of the head's
    work on prompt and padding positions whose log-probs are thrown away; score the labelled ones there too."""
    import trl.trainer.utils as trl_utils

    use_triton = trl_utils._use_triton  # its only use in that module: choosing the compact path
    trl_utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    try:
        yield
    finally:
        trl_utils._use_triton = use_triton


def _remove_fused_lm_head(model: torch.nn.Module) -> None:
    """Undo TRL's ``add_fused_lm_head``: it sets ``forward`` on the instance, and that method keeps a reference to
    the *original* model's forward, so a deep copy of the model (as in :func:`save_policy`) would silently run the
    original's weights. Deleting the instance attribute restores the class's own ``forward``."""
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and "forward" in vars(module):
            del module.forward


def _lora_config(config: PolicyTrainingConfig):
    if config.lora_r is None:
        return None
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
    )


def _train_dpo(pairs: list[PolicyPair], config: PolicyTrainingConfig, progress: ProgressFn | None) -> PolicyModel:
    tokenizer = load_tokenizer(config.model)
    # The policy in float32 whatever the checkpoint's dtype: with bf16=True autocast does the mixed precision and
    # the optimiser still updates float32 weights.
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    ref_model = None
    if config.reference is not None and Path(config.reference) != Path(config.model):
        if load_tokenizer(config.reference).get_vocab() != tokenizer.get_vocab():
            raise ValueError("the reference model's tokenizer differs from the policy's: log-ratios would be garbage")
        ref_model = AutoModelForCausalLM.from_pretrained(config.reference, dtype=torch.float32)
    peft_config = _lora_config(config)
    with (
        tempfile.TemporaryDirectory(prefix="tandem-dpo-") as scratch,
        _quiet_datasets(),
        _lm_head_scores_completions_only(),
    ):
        # An in-memory dataset would make `datasets` cache TRL's maps and filters (and the reference log-probs) in a
        # per-process temp folder that only goes at interpreter exit: a long-lived worker would collect files every
        # run. Backed by a file in the scratch folder, every cache lands beside it and goes with it.
        _conversations(pairs).save_to_disk(Path(scratch) / "pairs")
        dataset = load_from_disk(Path(scratch) / "pairs")
        args = DPOConfig(
            output_dir=scratch,  # nothing is saved there (save_strategy="no"); Trainer insists on one
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=config.learning_rate,
            num_train_epochs=config.num_epochs,
            max_steps=config.max_steps,
            warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
            lr_scheduler_type="linear",
            seed=config.seed,
            bf16=config.bf16,
            activation_checkpointing=config.gradient_checkpointing,  # also sets the old gradient_checkpointing
            beta=config.beta,
            loss_type=[config.loss_type],
            label_smoothing=config.label_smoothing,
            max_length=config.max_length,
            precompute_ref_log_probs=True,
            disable_dropout=config.disable_dropout,
            logging_steps=config.logging_steps,
            **quiet_trainer_args(),
        )
        trainer = _TandemDPOTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        # The reference log-probs are in the dataset now; the reference model itself is never used again.
        trainer.ref_model = ref_model = None
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout when tqdm is off
        recorder = _StepRecorder(trainer, progress)
        trainer.add_callback(recorder)
        pairs_trained = len(trainer.train_dataset)
        output = trainer.train()
        trained = trainer.model
    _remove_fused_lm_head(trained)
    tail = recorder.steps[-config.logging_steps :]

    def tail_mean(key: str) -> float:
        return sum(s[key] for s in tail) / len(tail) if tail else math.nan

    metrics = {
        "steps": output.global_step,
        "train_loss": output.training_loss,
        "final_loss": tail_mean("loss"),
        "reward_margin": tail_mean("margin"),
        "reward_accuracy": tail_mean("accuracy"),
        "pairs": len(pairs),
        "pairs_dropped": len(pairs) - pairs_trained,
        "pairs_by_source": dict(Counter(p.source for p in pairs)),
        "train_seconds": output.metrics.get("train_runtime"),
    }
    return PolicyModel(model=trained.eval(), tokenizer=tokenizer, config=config, metrics=metrics)


RewardFn = Callable[[list[str], list[str]], list[float]]
"""``reward(prompts, completions) -> one float per completion``: e.g. a reward model's ensemble-mean score."""


def train_policy_rloo(
    prompts: Sequence[str], reward_fn: RewardFn, config: PolicyTrainingConfig, *, progress: ProgressFn | None = None
) -> PolicyModel:
    """On-policy RL of the policy in ``config.model`` with TRL's ``RLOOTrainer`` (REINFORCE Leave-One-Out, Ahmadian
    et al. 2024): each step samples ``num_generations`` completions per prompt, scores them with ``reward_fn`` and
    uses the mean reward of the other completions as each one's baseline; ``beta`` weighs the KL to the reference.
    LoRA and the reference work as for DPO (the reference is the policy with its adapter off)."""
    if config.algorithm != "rloo":
        raise ValueError("train_policy_rloo needs algorithm='rloo'")
    if not prompts:
        raise ValueError("no prompts")
    from trl import RLOOConfig, RLOOTrainer

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    tokenizer = load_tokenizer(config.model)
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)

    def reward(prompts, completions, **kwargs) -> list[float]:
        # Conversational rows: the prompt is a message list, the completion one assistant message.
        return [
            float(r)
            for r in reward_fn(
                [p[-1]["content"] if isinstance(p, list) else p for p in prompts],
                [c[-1]["content"] if isinstance(c, list) else c for c in completions],
            )
        ]

    reward.__name__ = "reward_model"  # TRL logs rewards under the function's name
    with (
        tempfile.TemporaryDirectory(prefix="tandem-rloo-") as scratch,
        _quiet_datasets(),
        _lm_head_scores_completions_only(),
    ):
        rows = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts]})
        rows.save_to_disk(Path(scratch) / "prompts")
        dataset = load_from_disk(Path(scratch) / "prompts")
        args = RLOOConfig(
            output_dir=scratch,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=config.learning_rate,
            num_train_epochs=config.num_epochs,
            max_steps=config.max_steps,
            seed=config.seed,
            bf16=config.bf16,
            beta=config.beta,
            num_generations=config.num_generations,
            max_completion_length=config.max_completion_length,
            temperature=config.temperature,
            disable_dropout=config.disable_dropout,
            logging_steps=1,
            **quiet_trainer_args(),
        )
        trainer = RLOOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=_lora_config(config),
        )
        trainer.remove_callback(PrinterCallback)
        losses = _LossRecorder(progress)
        trainer.add_callback(losses)
        output = trainer.train()
        trained = trainer.model
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    _remove_fused_lm_head(trained)
    metrics = {
        "steps": output.global_step,
        "train_loss": output.training_loss,
        "reward_first": rewards[0] if rewards else math.nan,
        "reward_last": rewards[-1] if rewards else math.nan,
        "prompts": len(prompts),
        "train_seconds": output.metrics.get("train_runtime"),
    }
    return PolicyModel(model=trained.eval(), tokenizer=tokenizer, config=config, metrics=metrics)


class _LossRecorder(TrainerCallback):
    """Reports each optimiser step with the last logged loss (RLOO logs every step)."""

    def __init__(self, progress: ProgressFn | None):
        self.progress, self.loss = progress, math.nan

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress(state.global_step, state.max_steps, self.loss)


# --- the model users get back -------------------------------------------------------------------------------------


@dataclass
class PolicyModel:
    """A trained policy: ready to generate, score (:func:`dpo_logprobs`) and save (:func:`save_policy`)."""

    model: PreTrainedModel
    """The policy. With LoRA (``config.lora_r``) a ``peft.PeftModel`` with its adapter attached, not merged, so
    ``with model.disable_adapter():`` gives back the starting policy (the reference when ``config.reference`` is None).
    """
    tokenizer: PreTrainedTokenizerBase
    config: PolicyTrainingConfig
    metrics: dict = field(default_factory=dict)
    """``steps``, ``train_loss`` (mean over the run), ``final_loss`` / ``reward_margin`` / ``reward_accuracy`` (mean
    over the last ``logging_steps`` steps; margin and accuracy are TRL's ``rewards/margins`` and
    ``rewards/accuracies``), ``pairs``, ``pairs_dropped`` (TRL's length filter), ``pairs_by_source``,
    ``train_seconds``."""

    @property
    def uses_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    def merged_model(self) -> PreTrainedModel:
        """A plain ``PreTrainedModel`` with the adapter merged in: a copy when LoRA was used (the attached adapter
        stays as it is; this needs the memory of a second model), else the model itself."""
        if not self.uses_lora:
            return self.model
        return copy.deepcopy(self.model).merge_and_unload()


# --- saving and loading -------------------------------------------------------------------------------------------


def save_policy(model: PolicyModel, path: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (never overwriting) and return ``path``.

    Layout: merged full weights + config + tokenizer (with its chat template) at the top, so plain
    ``AutoModelForCausalLM.from_pretrained(path)`` loads the trained policy without PEFT; with LoRA, the adapter in
    ``adapter/`` (``PeftModel.from_pretrained(base, path / "adapter")`` on the starting policy); ``tandem_policy.json``
    with the training config, metrics, library versions and ``extra`` (e.g. code version, round id, data snapshot).
    """
    import peft
    import transformers
    import trl

    path = Path(path)
    with atomic_directory(path) as staging:
        if model.uses_lora:
            model.model.save_pretrained(staging / ADAPTER_DIR)
        model.merged_model().save_pretrained(staging)
        model.tokenizer.save_pretrained(staging)
        manifest = {
            "format": 1,
            "kind": "policy",
            "adapter": ADAPTER_DIR if model.uses_lora else None,
            "config": asdict(model.config),
            "metrics": model.metrics,
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "trl": trl.__version__,
                "peft": peft.__version__,
            },
            "extra": extra or {},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return path


def load_policy(
    path: str | os.PathLike, *, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load what :func:`save_policy` wrote: the merged policy (a plain causal LM, in eval mode) and its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(path).to(device or "cpu").eval()
    return model, load_tokenizer(path)


def read_manifest(path: str | os.PathLike) -> dict:
    """The ``tandem_policy.json`` of a saved policy (config, metrics, versions, extra)."""
    return json.loads((Path(path) / MANIFEST).read_text())


# --- log-probabilities and implicit rewards -----------------------------------------------------------------------


def chat_token_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, *, max_length: int | None = None
) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of one exchange, tokenized as TRL 1.16's ``DPOTrainer`` does it.

    The prompt is the chat template of ``[user]`` with the generation prompt; the response is whatever the template
    of ``[user, assistant]`` adds after the longest common prefix of the two (usually the assistant text and its
    end-of-turn token). With ``max_length``, the joined sequence is cut to its first ``max_length`` tokens, as
    TRL's collator does (the prompt first, so the response may lose its end or vanish).
    """
    user = [{"role": "user", "content": prompt}]
    prompt_ids = list(
        tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    )
    full_ids = list(
        tokenizer.apply_chat_template(
            [*user, {"role": "assistant", "content": response}], tokenize=True, return_dict=True
        )["input_ids"]
    )
    cut = 0
    while cut < min(len(prompt_ids), len(full_ids)) and prompt_ids[cut] == full_ids[cut]:
        cut += 1
    prompt_ids, response_ids = full_ids[:cut], full_ids[cut:]
    if max_length is not None:
        prompt_ids = prompt_ids[:max_length]
        response_ids = response_ids[: max(0, max_length - len(prompt_ids))]
    return prompt_ids, response_ids


def dpo_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
) -> torch.Tensor:
    """log π(y | x) of each (prompt x, response y) tokenized exactly as DPO training sees it (:func:`chat_token_ids`:
    the response includes the end-of-turn token): shape (B,), float32, on the CPU. ``model`` may be a ``PeftModel``
    (its active adapter is used)."""
    if len(prompts) != len(responses):
        raise ValueError("prompts and responses differ in length")
    encoded = [chat_token_ids(tokenizer, p, r, max_length=max_length) for p, r in zip(prompts, responses, strict=True)]
    rows = [(p + r, len(p)) for p, r in encoded]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return response_logprobs(model, rows, pad_id=pad_id, batch_size=batch_size)


def implicit_reward_margins(
    model: PreTrainedModel,
    reference: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PolicyPair],
    beta: float,
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """DPO's implicit reward margin of each pair, shape (B,).

    DPO (Rafailov et al. 2023, eq. 5) reads a reward off any policy: r(x, y) = β log π(y|x)/π_ref(y|x) (+ β log Z(x),
    which cancels in a difference), so the margin of a pair is

        β · [(log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))]

    > 0 when the policy has moved towards the chosen answer more than towards the rejected one; exactly 0 for
    π = π_ref; swapping chosen and rejected flips its sign. TRL logs its batch mean as ``rewards/margins``.
    ``reference=None`` uses ``model`` with its LoRA adapter disabled (needs a ``PeftModel``), the reference of a
    LoRA run that had no explicit ``reference``.
    """
    prompts = [p.prompt for p in pairs]
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
    policy_c = dpo_logprobs(model, tokenizer, prompts, chosen, batch_size=batch_size)  # (B,)
    policy_r = dpo_logprobs(model, tokenizer, prompts, rejected, batch_size=batch_size)  # (B,)
    if reference is None:
        if not hasattr(model, "disable_adapter"):
            raise ValueError("reference=None needs a PeftModel (its adapter-disabled base is the reference)")
        with model.disable_adapter():
            ref_c = dpo_logprobs(model, tokenizer, prompts, chosen, batch_size=batch_size)
            ref_r = dpo_logprobs(model, tokenizer, prompts, rejected, batch_size=batch_size)
    else:
        ref_c = dpo_logprobs(reference, tokenizer, prompts, chosen, batch_size=batch_size)
        ref_r = dpo_logprobs(reference, tokenizer, prompts, rejected, batch_size=batch_size)
    return beta * ((policy_c - ref_c) - (policy_r - ref_r))
