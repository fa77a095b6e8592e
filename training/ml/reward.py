"""Train, save and load text reward models (Bradley–Terry) on a :class:`~training.ml.pairs.PairSet`.

Read top to bottom: config → text encoding (left truncation) → TRL ``RewardTrainer`` with our loss → ensemble of
members → :class:`RewardModel` (scoring) → atomic save / load.

Why TRL's ``RewardTrainer`` and what we change (TRL 1.16):
- It takes margins (a ``margin`` column) and pre-tokenized datasets (``chosen_ids`` / ``rejected_ids``), so we
  tokenize ourselves and **truncate from the left**: the end of a dialogue (the answer being judged) is kept.
  TRL's own ``max_length`` *drops* longer pairs silently; we pass ``max_length=None`` so nothing is dropped.
- Its loss is written inline in ``compute_loss`` and knows no soft labels (ties) or pair weights (annotator
  weights), so a small subclass overrides ``compute_loss`` to call :mod:`training.ml.losses` (the registry), and
  the collator carries two more columns. Everything else — optimiser, schedule, accumulation, mixed precision,
  Accelerate/multi-GPU, LoRA through PEFT — is TRL's and transformers' ``Trainer``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.trainer_callback import PrinterCallback
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from .backbones import resolve_backbone
from .losses import get_loss
from .pairs import PairSet, PreferencePair

MANIFEST = "tandem_reward.json"
"""Written beside the weights: the training config, the data snapshot id and the ensemble's member folders."""
JUDGMENT_IDS = "judgment_ids.txt"
"""One judgment id per line: exactly the labels this checkpoint was trained from (held-out ones are not)."""
EVAL_JUDGMENT_IDS = "eval_judgment_ids.txt"
"""One judgment id per line: the held-out labels it was evaluated on."""

ProgressFn = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)``, called after every optimiser step (all ensemble members counted)."""


@dataclass
class RewardTrainingConfig:
    """Everything that decides a reward-model training run; saved as JSON beside the checkpoint."""

    backbone: str
    """Hugging Face model id, local folder or builtin name (``builtin:minilm``; see :mod:`training.ml.backbones`),
    loaded with ``AutoModelForSequenceClassification`` (num_labels=1)."""
    max_length: int = 512
    """Tokens per (prompt + response) sequence; longer ones are truncated from the LEFT so the end is kept."""
    separator: str = "\n\n"
    """Put between prompt and response when they are joined into one sequence."""
    loss: str = "bradley_terry"
    """Key in ``training.ml.losses.LOSSES``."""
    use_margin: bool = True
    """Use the pairs' margins (from preference strength); False trains plain Bradley–Terry."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate (the round's default; see ``training.config.RoundConfig``)."""
    num_epochs: float = 1.0
    """Passes over the train pairs (per ensemble member)."""
    max_steps: int = -1
    """If > 0, stop after this many optimiser steps per member (overrides ``num_epochs``)."""
    batch_size: int = 16
    """Pairs per device per micro-batch (each pair is two sequences)."""
    group_by_length: bool = False
    """Draw micro-batches of pairs of similar length (transformers' ``LengthGroupedSampler``: shuffle, cut into
    mega-batches of up to 50 micro-batches, sort each by length) instead of TRL's random batches. Off by default:
    ``length_buckets`` already removes most padding from random batches without changing which pairs share a batch
    (grouping changes the batches' make-up, and on hh-rlhf its held-out accuracy trailed TRL's in 2 of 3 seeds,
    ``bench/README.md``). The pairs seen per epoch are the same either way."""
    length_buckets: int = 4
    """Forward each micro-batch's sequences in up to this many slices of similar length, each padded only to its
    own longest (:func:`length_slices` picks the cuts that waste the fewest token slots). The batch, the rewards
    and the loss are the same as one padded forward — padding is masked out — so this changes speed, never what is
    learned: on random batches of hh-rlhf dialogues it forwards ~1.6x fewer token slots (``bench/README.md``).
    1 turns it off (one forward per micro-batch, as TRL does). Measured on CPU only: on a GPU, where a wide
    batch costs little more than a narrow one, fewer slices may be faster — measure (``bench/rm_bench.py``)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimiser step."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_ratio: float = 0.1
    """Share of the steps spent warming the learning rate up linearly (then linear decay to 0)."""
    seed: int = 0
    """Seed of member 0; member i uses ``seed + i`` (head initialisation, data order, bootstrap sample)."""
    ensemble_size: int = 1
    """Number of independently trained members; > 1 gives a disagreement (uncertainty) per pair."""
    bootstrap: bool = True
    """With ``ensemble_size > 1``: each member trains on a resample (with replacement) of the train pairs."""
    lora_r: int | None = None
    """If set, train LoRA adapters of this rank (PEFT) plus the head, merged into the weights before saving."""
    bf16: bool = False
    """Mixed precision (bfloat16); useful on GPUs that support it, slow on CPUs."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    center_rewards_coefficient: float | None = None
    """Adds c·mean((r_c + r_r)²) to keep rewards near zero (Eisenstein et al. 2023, as in TRL); None for off."""
    logging_steps: int = 10
    """How often the trainer's own logs (loss, accuracy) are aggregated."""


# --- text → token ids -------------------------------------------------------------------------------------------


def prepare_tokenizer(
    tokenizer: PreTrainedTokenizerBase, *, max_positions: int | None = None
) -> PreTrainedTokenizerBase:
    """A copy of ``tokenizer`` that truncates from the left and has a pad token (eos if none, as TRL does).

    ``max_positions`` (the backbone's ``max_position_embeddings``) caps ``model_max_length``, so a configured
    ``max_length`` beyond what the model can embed is cut to what it can, instead of failing mid-training.
    """
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.truncation_side = "left"
    if max_positions:
        tokenizer.model_max_length = min(tokenizer.model_max_length, max_positions)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def encode_texts(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    config: RewardTrainingConfig,
) -> list[list[int]]:
    """Token ids of ``prompt + separator + response [+ eos]``, at most ``max_length``, cut from the left.

    The tokenizer adds its own special tokens *after* truncation (e.g. BERT's [CLS] … [SEP] stay in place). Causal
    LMs pool the last token, so, like TRL, we append the eos token when the tokenizer does not add one.
    """
    if tokenizer.truncation_side != "left":
        raise ValueError("use prepare_tokenizer(): the tokenizer must truncate from the left")
    eos = tokenizer.eos_token if _needs_eos(tokenizer) else ""
    texts = [f"{p}{config.separator}{r}{eos}" for p, r in zip(prompts, responses, strict=True)]
    max_length = min(config.max_length, tokenizer.model_max_length)
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def _needs_eos(tokenizer: PreTrainedTokenizerBase) -> bool:
    if tokenizer.eos_token is None:
        return False
    return tokenizer("x")["input_ids"][-1] != tokenizer.eos_token_id


def _pairs_dataset(
    pairs: Sequence[PreferencePair], tokenizer: PreTrainedTokenizerBase, config: RewardTrainingConfig
) -> Dataset:
    prompts = [p.prompt for p in pairs]
    chosen_ids = encode_texts(tokenizer, prompts, [p.chosen for p in pairs], config=config)
    rejected_ids = encode_texts(tokenizer, prompts, [p.rejected for p in pairs], config=config)
    return Dataset.from_dict(
        {
            "chosen_ids": chosen_ids,
            "rejected_ids": rejected_ids,
            # The collator pads both halves to the longest of the two, so that is the pair's padded length.
            "length": [max(len(c), len(r)) for c, r in zip(chosen_ids, rejected_ids, strict=True)],
            "margin": [p.margin if config.use_margin else 0.0 for p in pairs],
            "soft_label": [p.label for p in pairs],
            "pair_weight": [p.weight for p in pairs],
        }
    )


def length_slices(sorted_lengths: Sequence[int], max_slices: int) -> list[int]:
    """Where to cut ascending ``sorted_lengths`` into at most ``max_slices`` runs so that padding each run to its
    own longest wastes the fewest token slots: the end index of each run (the last is ``len(sorted_lengths)``).

    Cost of a run ``[i, j)`` = ``(j - i) * sorted_lengths[j - 1]``; exact dynamic programme, O(max_slices · n²) —
    n is a micro-batch (tens of sequences), so this is microseconds beside one forward pass.

    >>> length_slices([10, 11, 12, 100, 101], 2)
    [3, 5]
    >>> length_slices([5, 5, 5], 3)  # equal lengths: one run, no extra forward for nothing
    [3]
    """
    n = len(sorted_lengths)
    if n == 0:
        return []
    if any(a > b for a, b in itertools.pairwise(sorted_lengths)):
        raise ValueError("length_slices needs lengths in ascending order")
    slices = max(1, min(max_slices, n))
    inf = float("inf")
    # best[k][j]: fewest slots for the first j lengths in k runs; cut[k][j]: where the last of those runs starts.
    best = [[0.0] + [inf] * n] + [[inf] * (n + 1) for _ in range(slices)]
    cut = [[0] * (n + 1) for _ in range(slices + 1)]
    for k in range(1, slices + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                cost = best[k - 1][i] + (j - i) * sorted_lengths[j - 1]
                if cost < best[k][j]:
                    best[k][j], cut[k][j] = cost, i
    # Fewest runs among the cheapest: another run that saves no slot is only another forward pass.
    k = min(range(1, slices + 1), key=lambda k: (best[k][n], k))
    ends, j = [], n
    while k > 0:
        ends.append(j)
        j, k = cut[k][j], k - 1
    return ends[::-1]


# --- TRL, extended with our loss ----------------------------------------------------------------------------------


@dataclass
class _PairCollator(DataCollatorForPreference):
    """TRL's collator (input_ids = [chosen; rejected], right-padded, (2B, T)) plus soft labels and weights, (B,)."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        batch["soft_label"] = torch.tensor([e["soft_label"] for e in examples], dtype=torch.float)
        batch["pair_weight"] = torch.tensor([e["pair_weight"] for e in examples], dtype=torch.float)
        return batch


class _TandemRewardTrainer(RewardTrainer):
    """``RewardTrainer`` whose loss comes from :mod:`training.ml.losses` (soft labels and weights included)."""

    def __init__(self, *args, loss_name: str, length_buckets: int = 1, **kwargs):
        self._loss_fn = get_loss(loss_name)
        self._length_buckets = length_buckets
        self.recent_losses: list[float] = []
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self):
        # Trainer drops dataset columns that are not in this list.
        if self._signature_columns is None:
            # "length" feeds the length-grouped sampler; the collator ignores it.
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "soft_label", "pair_weight", "length"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        rewards = self._rewards(model, inputs["input_ids"], inputs["attention_mask"])  # (2B,) chosen, then rejected
        chosen, rejected = torch.chunk(rewards, chunks=2)  # (B,), (B,)
        loss, metrics = self._loss_fn(
            chosen, rejected, margin=inputs.get("margin"), soft_label=inputs["soft_label"], weight=inputs["pair_weight"]
        )
        if self.args.center_rewards_coefficient is not None:
            loss = loss + self.args.center_rewards_coefficient * torch.mean((chosen + rejected) ** 2)
        for key, value in metrics.items():
            if not math.isnan(value):
                self._metrics[mode][key].append(value)
        if mode == "train":
            self.recent_losses.append(loss.item())
        return (loss, SequenceClassifierOutput(logits=rewards[:, None])) if return_outputs else loss

    def _rewards(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One reward per row of the right-padded (N, T) batch, forwarded in slices of similar length."""
        lengths = attention_mask.sum(dim=1)  # (N,)
        order = torch.argsort(lengths, stable=True)  # (N,) shortest first
        cuts = length_slices(lengths[order].tolist(), self._length_buckets)
        parts = []
        for start, stop in zip([0, *cuts[:-1]], cuts, strict=True):
            rows = order[start:stop]
            width = int(lengths[rows].max())  # right padding: every token past `width` is padding in these rows
            out = model(input_ids=input_ids[rows, :width], attention_mask=attention_mask[rows, :width], use_cache=False)
            parts.append(out.logits.squeeze(-1))
        sorted_rewards = torch.cat(parts)  # (N,) in `order`
        return sorted_rewards[torch.argsort(order)]  # back to the batch's own order (differentiable gather)


class _ProgressCallback(TrainerCallback):
    """Forwards (global step over all members, total steps, mean loss of the step) to a plain function."""

    def __init__(self, trainer: _TandemRewardTrainer, progress: ProgressFn, *, member: int, members: int):
        self.trainer, self.progress, self.member, self.members = trainer, progress, member, members

    def on_step_end(self, args, state, control, **kwargs):
        losses = self.trainer.recent_losses
        loss = sum(losses) / len(losses) if losses else float("nan")
        losses.clear()
        offset = self.member * state.max_steps
        self.progress(offset + state.global_step, self.members * state.max_steps, loss)


# --- the model users get back -------------------------------------------------------------------------------------


@dataclass
class RewardModel:
    """An ensemble of sequence-classification reward models (one member is an ensemble of one) and its tokenizer."""

    members: list[PreTrainedModel]
    tokenizer: PreTrainedTokenizerBase
    config: RewardTrainingConfig
    snapshot_id: str | None = None
    judgment_ids: tuple[str, ...] = ()
    """The judgments it was trained from (``PairSet.train_judgment_ids``)."""
    eval_judgment_ids: tuple[str, ...] = ()
    """The held-out judgments of its data snapshot (``PairSet.eval_judgment_ids``)."""
    pair_options: dict = field(default_factory=dict)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int = 32) -> torch.Tensor:
        """Rewards of each (prompt, response), per member: shape (M, N), on the CPU."""
        ids = encode_texts(self.tokenizer, prompts, responses, config=self.config)
        # Batches of similar length pad little; each score goes back to its own position.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(self.members), len(ids))  # (M, N)
        for m, member in enumerate(self.members):
            member.eval()
            device = next(member.parameters()).device
            for start in range(0, len(ids), batch_size):
                rows = order[start : start + batch_size]
                chunk = [torch.tensor(ids[i]) for i in rows]
                input_ids = torch.nn.utils.rnn.pad_sequence(
                    chunk, batch_first=True, padding_value=self.tokenizer.pad_token_id
                )  # (b, T) right-padded, as in training
                mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(x) for x in chunk], batch_first=True)
                logits = member(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits  # (b, 1)
                out[m, rows] = logits[:, 0].float().cpu()
        return out

    def score_pairs(
        self, pairs: Sequence[PreferencePair], *, batch_size: int = 32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) rewards per member, each (M, B)."""
        prompts = [p.prompt for p in pairs]
        chosen = self.score(prompts, [p.chosen for p in pairs], batch_size=batch_size)
        rejected = self.score(prompts, [p.rejected for p in pairs], batch_size=batch_size)
        return chosen, rejected


def pair_uncertainty(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ensemble summary per pair from (M, B) member rewards: each value is (B,).

    ``mean_chosen`` / ``mean_rejected``: ensemble-mean rewards. ``prob``: σ of the mean reward gap.
    ``delta_std``: std over members of r_c − r_r. ``disagreement``: std over members of σ(r_c − r_r) — bounded in
    [0, 0.5] and ~0 when every member is confident the same way, so it is comparable across models of different
    reward scales (what active selection should sort by). Both stds are 0 for a single member.
    """
    delta = chosen - rejected  # (M, B)
    unbiased = chosen.shape[0] > 1
    zeros = torch.zeros(delta.shape[1])
    return {
        "mean_chosen": chosen.mean(0),
        "mean_rejected": rejected.mean(0),
        "prob": torch.sigmoid(delta.mean(0)),
        "delta_std": delta.std(0) if unbiased else zeros,
        "disagreement": torch.sigmoid(delta).std(0) if unbiased else zeros,
    }


# --- training -----------------------------------------------------------------------------------------------------


def train_reward_model(
    pairs: PairSet,
    config: RewardTrainingConfig,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: ProgressFn | None = None,
) -> RewardModel:
    """Train ``config.ensemble_size`` reward models on ``pairs.train`` and return them as one :class:`RewardModel`.

    Nothing is downloaded unless ``config.backbone`` is a hub id that is not cached (set ``HF_HUB_OFFLINE=1`` to
    forbid that); the tokenizer is loaded from the backbone unless given.
    """
    if not pairs.train:
        raise ValueError("no training pairs: the PairSet's train split is empty")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL pings the hub from every trainer otherwise
    backbone = resolve_backbone(config.backbone)
    max_positions = getattr(AutoConfig.from_pretrained(backbone), "max_position_embeddings", None)
    tokenizer = prepare_tokenizer(tokenizer or AutoTokenizer.from_pretrained(backbone), max_positions=max_positions)
    members = []
    for i in range(config.ensemble_size):
        seed = config.seed + i
        member_pairs = list(pairs.train)
        if config.ensemble_size > 1 and config.bootstrap:
            rng = random.Random(seed)
            member_pairs = [rng.choice(pairs.train) for _ in pairs.train]
        members.append(
            _train_member(member_pairs, config, tokenizer, backbone=backbone, seed=seed, member=i, progress=progress)
        )
    return RewardModel(
        members=members,
        tokenizer=tokenizer,
        config=config,
        snapshot_id=pairs.snapshot_id,
        judgment_ids=pairs.train_judgment_ids,
        eval_judgment_ids=pairs.eval_judgment_ids,
        pair_options=dict(pairs.options),
    )


def _train_member(
    pairs: list[PreferencePair],
    config: RewardTrainingConfig,
    tokenizer: PreTrainedTokenizerBase,
    *,
    backbone: str,
    seed: int,
    member: int,
    progress: ProgressFn | None,
) -> PreTrainedModel:
    torch.manual_seed(seed)  # the new reward head is initialised at load time: seed it per member
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft_config = None
    if config.lora_r is not None:
        from peft import LoraConfig, TaskType

        # SEQ_CLS keeps the (new) classification head fully trainable beside the adapters.
        peft_config = LoraConfig(
            task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=2 * config.lora_r, target_modules="all-linear"
        )
    with tempfile.TemporaryDirectory(prefix="tandem-rm-") as scratch:
        args = RewardConfig(
            output_dir=scratch,  # nothing is saved there (save_strategy="no"); Trainer insists on one
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=config.learning_rate,
            num_train_epochs=config.num_epochs,
            max_steps=config.max_steps,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps
            lr_scheduler_type="linear",
            train_sampling_strategy="group_by_length" if config.group_by_length else "random",
            seed=seed,
            bf16=config.bf16,
            activation_checkpointing=config.gradient_checkpointing,  # the new name of gradient_checkpointing
            center_rewards_coefficient=config.center_rewards_coefficient,
            max_length=None,  # TRL would *drop* longer pairs; ours are already cut from the left
            logging_steps=config.logging_steps,
            **quiet_trainer_args(),
        )
        trainer = _TandemRewardTrainer(
            model=model,
            args=args,
            train_dataset=_pairs_dataset(pairs, tokenizer, config),
            processing_class=tokenizer,
            data_collator=_PairCollator(pad_token_id=tokenizer.pad_token_id),
            peft_config=peft_config,
            loss_name=config.loss,
            length_buckets=config.length_buckets,
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout when tqdm is off
        if progress is not None:
            trainer.add_callback(_ProgressCallback(trainer, progress, member=member, members=config.ensemble_size))
        trainer.train()
        trained = trainer.model
    if config.lora_r is not None:
        trained = trained.merge_and_unload()  # a plain model again: loads with from_pretrained, no PEFT needed
    return trained.eval()


def quiet_trainer_args() -> dict:
    """Trainer arguments every run here shares: no checkpoints or evaluation of the Trainer's own (we save and
    evaluate ourselves), no reporting to tracking services, no tqdm (progress goes to our callback)."""
    return {
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }


# --- saving and loading -------------------------------------------------------------------------------------------


@contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder beside ``final``; rename it to ``final`` only if the block finishes.

    rename(2) within one filesystem is atomic, so ``final`` either does not exist or is complete: a registry that
    points at it never sees a half-written checkpoint. Files are fsynced before the rename so a power cut cannot
    publish the name before the data. On an exception the staging folder is removed; a hard kill leaves a hidden
    ``.<name>.partial-*`` sibling that is safe to delete.
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} exists; artifacts are immutable, pick a new path")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        _fsync_tree(staging)
        os.rename(staging, final)
        _fsync_path(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def member_dirs(count: int) -> list[str]:
    """Member folders relative to the artifact: member 0 *is* the artifact folder, so ``from_pretrained(path)``
    works on any saved reward model; extra ensemble members live in ``members/<i>``."""
    return ["."] + [f"members/{i}" for i in range(1, count)]


def save_reward_model(model: RewardModel, path: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically and return ``path``.

    Layout: HF weights + config + tokenizer of member 0 at the top (loads with plain ``from_pretrained``),
    ``members/<i>`` for further members, ``tandem_reward.json`` (training config, data snapshot id, pair options,
    library versions, ``extra`` — e.g. the code version and round id from the caller), ``judgment_ids.txt`` (the
    judgments it was trained from) and ``eval_judgment_ids.txt`` (the held-out ones).
    """
    import transformers
    import trl

    path = Path(path)
    dirs = member_dirs(len(model.members))
    with atomic_directory(path) as staging:
        for member, rel in zip(model.members, dirs, strict=True):
            member.save_pretrained(staging / rel)
        model.tokenizer.save_pretrained(staging)
        manifest = {
            "format": 1,
            "kind": "reward",
            "members": dirs,
            "snapshot_id": model.snapshot_id,
            "judgment_count": len(model.judgment_ids),  # trained from; held-out ones are counted apart
            "eval_judgment_count": len(model.eval_judgment_ids),
            "pair_options": model.pair_options,
            "config": asdict(model.config),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
            "extra": extra or {},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        (staging / JUDGMENT_IDS).write_text("".join(f"{j}\n" for j in model.judgment_ids))
        (staging / EVAL_JUDGMENT_IDS).write_text("".join(f"{j}\n" for j in model.eval_judgment_ids))
    return path


def read_judgment_ids(path: Path) -> tuple[str, ...]:
    """The ids in a ``judgment_ids.txt``-style file; () when an older artifact has none."""
    return tuple(path.read_text().splitlines()) if path.exists() else ()


def load_reward_model(path: str | os.PathLike, *, device: str | torch.device | None = None) -> RewardModel:
    """Load what :func:`save_reward_model` wrote (every member), ready to score."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    members = [
        AutoModelForSequenceClassification.from_pretrained(path / rel).to(device or "cpu").eval()
        for rel in manifest["members"]
    ]
    return RewardModel(
        members=members,
        tokenizer=prepare_tokenizer(
            AutoTokenizer.from_pretrained(path),
            max_positions=getattr(members[0].config, "max_position_embeddings", None),
        ),
        config=RewardTrainingConfig(**manifest["config"]),
        snapshot_id=manifest["snapshot_id"],
        judgment_ids=read_judgment_ids(path / JUDGMENT_IDS),
        eval_judgment_ids=read_judgment_ids(path / EVAL_JUDGMENT_IDS),
        pair_options=manifest.get("pair_options", {}),
    )
