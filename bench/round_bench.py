"""One policy round on the real embedded models, step by step, and two head-to-heads of its hot paths.

Prints figures; it is not a test. Models: SmolLM2-135M-Instruct (``builtin:smollm2``, float32) is the policy,
all-MiniLM-L6-v2 (``builtin:minilm``) the reward model; CPU only. Workload: ``bench/loop_workload.py`` (hh-rlhf
harmless-base first turns: short prompts, the hh-rlhf answers as candidates).

1. **round**: a fresh var folder (``TANDEM_VAR_DIR`` in a temporary folder, SQLite), the workload imported through
   the bundle importer, ``--labels`` judgments given through the queue's services (hh-rlhf's own labels: the
   ``chosen`` answer wins), then ``round_start(kind="policy")`` + ``round_run`` in-process. Each step's seconds are
   read from ``Round.steps`` (reward → generate → score → optimise → evaluate → push → register). Prompts × K,
   max_new_tokens, policy steps and eval prompts are flags.
2. **dpo**: optimiser steps/s of ``training.ml.policy.train_policy`` (arm ``ours``) against plain TRL ``DPOTrainer``
   as shipped (arm ``trl``: its defaults — gradient checkpointing on, reference log-probs computed every step —
   except what must be equal: bf16 off on a CPU, learning rate, steps, batch, β, seed, max_length, LoRA config),
   on the same SmolLM2, the same hh-rlhf pairs and batch, with LoRA (r=8, all-linear) and as a full fine-tune.
   Steps/s is over the whole call (tokenizer + model load, TRL's dataset maps, ours' reference pre-pass, training)
   and over ``train()`` alone (TRL's ``train_runtime``). The per-step losses of both arms print side by side: the
   two paths train the same thing when the first k losses agree within ``--loss-tol``.
3. **generation**: tokens/s of ``generate_candidates`` (per-candidate seeds, Gumbel-max over the warped logits) against
   a plain ``model.generate(do_sample=True)`` over the same left-padded batches (same rows, same order, same
   temperature / top-p / max_new_tokens). Tokens = generated tokens up to and including the eos; row-steps = rows
   × decode steps of every ``generate`` call (what the batch computed, whoever finished early), so luck in answer
   lengths shows in the first and not in the second.

Every arm (and the round) runs in its own spawned child process, one after the other; the head-to-head arms
alternate order across ``--repeats`` (A B, B A) so slow phases of a shared machine hit both.

    .venv/bin/python bench/round_bench.py                 # the defaults (time: bench/README.md)
    .venv/bin/python bench/round_bench.py --quick         # smoke run: tiny sizes, 1 repeat
    .venv/bin/python bench/round_bench.py --parts dpo --modes lora,full --dpo-steps 12 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_workload import ROOT, WORKLOAD, django_setup, hh_first_turns, hh_project, label_as_hh, machine, setup_env

PARTS = ("round", "dpo", "generation")


# --- 1. one policy round ------------------------------------------------------------------------------------------


def round_settings(args: argparse.Namespace) -> dict:
    return {
        "backbone": "builtin:minilm",
        "policy": "builtin:smollm2",
        "prompts_per_round": args.prompts,
        "candidates_per_prompt": args.k,
        "max_new_tokens": args.max_new_tokens,
        "policy_max_steps": args.policy_steps,
        "policy_batch_size": args.batch_size,
        "eval_prompts": args.eval_prompts,
        "push_active_pairs": args.prompts,
        "seed": 0,
    }


def run_round(args: argparse.Namespace) -> dict:
    setup_env(args.threads)
    var_dir = Path(tempfile.mkdtemp(prefix="round-bench-"))
    try:
        django_setup(var_dir)
        from training.models import ModelKind
        from training.rounds import round_run, round_start

        project = hh_project(
            var_dir=var_dir,
            eval_prompts=args.eval_prompts,
            train_prompts=args.train_prompts,
            training_settings=round_settings(args),
        )
        labels = label_as_hh(project, args.labels)
        started = round_start(project=project, kind=ModelKind.POLICY, enqueue=False)
        t0, c0 = time.perf_counter(), time.process_time()
        done = round_run(round_id=started.pk)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        metrics = done.metrics or {}
        return {
            "part": "round",
            "status": done.status,
            "error": done.error,
            "labels": labels,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "steps": {s["name"]: s.get("seconds") for s in done.steps},
            "generation": {k: metrics.get("generation", {}).get(k) for k in ("prompts", "tokens", "reward_mean")},
            "policy_train": {
                k: (metrics.get("policy_train") or {}).get(k)
                for k in ("steps", "pairs", "pairs_by_source", "final_loss", "train_seconds")
            },
            "reward_eval_accuracy": (metrics.get("eval") or {}).get("accuracy"),
            "policy_eval": {
                k: (metrics.get("policy") or {}).get(k)
                for k in ("prompts", "reward_new", "reward_previous", "win_rate", "kl_to_reference", "mean_tokens_new")
            },
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


# --- 2. DPO: ours against plain TRL -------------------------------------------------------------------------------


def dpo_pairs(args: argparse.Namespace):
    from training.ml.policy import PolicyPair

    rows = hh_first_turns()[-args.dpo_pairs :]  # the end of the hash order: never an eval prompt of part 1
    return [PolicyPair(prompt=r["prompt"], chosen=r["chosen"], rejected=r["rejected"]) for r in rows]


def run_dpo(arm: str, mode: str, args: argparse.Namespace) -> dict:
    setup_env(args.threads)
    import torch

    from training.ml.backbones import resolve_backbone
    from training.ml.policy import PolicyTrainingConfig, train_policy

    path = resolve_backbone("builtin:smollm2")
    pairs = dpo_pairs(args)
    lora_r = 8 if mode == "lora" else None
    lr = args.lora_lr if mode == "lora" else args.full_lr
    config = PolicyTrainingConfig(
        model=path,
        learning_rate=lr,
        max_steps=args.dpo_steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lora_r=lora_r,
        seed=0,
        logging_steps=args.dpo_steps,
    )
    losses: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    if arm == "ours":
        trained = train_policy(pairs, config, progress=lambda step, total, loss: losses.append(loss))
        train_s = trained.metrics["train_seconds"]
        extra = {"gradient_checkpointing": config.gradient_checkpointing, "precompute_ref_log_probs": True}
    else:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.trainer_callback import PrinterCallback
        from trl import DPOConfig, DPOTrainer

        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        dataset = Dataset.from_dict(
            {
                "prompt": [[{"role": "user", "content": p.prompt}] for p in pairs],
                "chosen": [[{"role": "assistant", "content": p.chosen}] for p in pairs],
                "rejected": [[{"role": "assistant", "content": p.rejected}] for p in pairs],
            }
        )
        peft_config = None
        if lora_r is not None:
            from peft import LoraConfig, TaskType

            peft_config = LoraConfig(
                task_type=TaskType.CAUSAL_LM,
                r=lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
            )
        with tempfile.TemporaryDirectory() as scratch:
            trl_args = DPOConfig(
                output_dir=scratch,
                per_device_train_batch_size=args.batch_size,
                learning_rate=lr,
                max_steps=args.dpo_steps,
                seed=0,
                bf16=False,  # DPOConfig defaults to bf16, which Trainer refuses on a CPU
                beta=config.beta,
                max_length=args.max_length,
                logging_steps=1,
                save_strategy="no",
                report_to="none",
                disable_tqdm=True,
            )
            trainer = DPOTrainer(
                model=model, args=trl_args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
            )
            trainer.remove_callback(PrinterCallback)  # it prints every step's log dict when tqdm is off
            output = trainer.train()
            train_s = output.metrics.get("train_runtime")
            losses = [e["loss"] for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
            extra = {
                "gradient_checkpointing": trainer.model.is_gradient_checkpointing,
                "precompute_ref_log_probs": trl_args.precompute_ref_log_probs,
            }
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "part": "dpo",
        "arm": arm,
        "mode": mode,
        "steps": args.dpo_steps,
        "batch_pairs": args.batch_size,
        "seconds": round(wall, 2),
        "train_seconds": round(train_s, 2) if train_s else None,
        "cpu_seconds": round(cpu, 2),
        "steps_per_s": round(args.dpo_steps / wall, 4),
        "steps_per_cpu_s": round(args.dpo_steps / cpu, 4),
        "train_steps_per_s": round(args.dpo_steps / train_s, 4) if train_s else None,
        "losses": [round(x, 5) for x in losses],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **extra,
    }


# --- 3. generation: per-candidate seeds against plain sampling ----------------------------------------------------


def run_generation(arm: str, args: argparse.Namespace) -> dict:
    setup_env(args.threads)
    import torch

    from training.ml.generation.text import (
        SamplingConfig,
        _eos_ids,
        generate_candidates,
        load_causal_lm,
        prompt_token_ids,
    )

    t_load = time.perf_counter()
    model, tokenizer = load_causal_lm("builtin:smollm2")
    load_s = time.perf_counter() - t_load
    prompts = [r["prompt"] for r in hh_first_turns()[: args.gen_prompts]]
    sampling = SamplingConfig(
        max_new_tokens=args.max_new_tokens, temperature=0.8, top_p=0.95, batch_size=args.gen_batch_size
    )  # the round's defaults (training.config.RoundConfig)
    calls: list[tuple[int, int]] = []  # (rows, decode steps) of every generate call
    original = model.generate

    def counting_generate(*a, **kw):
        out = original(*a, **kw)
        calls.append((out.shape[0], out.shape[1] - kw["input_ids"].shape[1]))
        return out

    model.generate = counting_generate
    eos_ids = _eos_ids(model, tokenizer)
    t0, c0 = time.perf_counter(), time.process_time()
    if arm == "ours":
        rows = generate_candidates(model, tokenizer, prompts, k=args.k, sampling=sampling, base_seed=0)
        tokens = sum(g.token_count for row in rows for g in row)
    else:
        torch.manual_seed(0)
        ids = [prompt_token_ids(tokenizer, p) for p in prompts]
        # The same rows in the same order as generate_candidates: K per prompt, longest prompts first (stable sort).
        items = sorted(((i, j) for i in range(len(prompts)) for j in range(args.k)), key=lambda it: -len(ids[it[0]]))
        tokens = 0
        pad_id = tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(items), sampling.batch_size):
                batch = items[start : start + sampling.batch_size]
                width = max(len(ids[i]) for i, _ in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (b, width), left-padded
                attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (i, _) in enumerate(batch):
                    input_ids[row, width - len(ids[i]) :] = torch.tensor(ids[i])
                    attention_mask[row, width - len(ids[i]) :] = 1
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    do_sample=True,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=eos_ids,
                )
                for row in out[:, width:].tolist():  # (b, n): cut each row at its first eos, which counts
                    end = next((t for t, token in enumerate(row) if token in eos_ids), None)
                    tokens += len(row) if end is None else end + 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    row_steps = sum(r * s for r, s in calls)
    return {
        "part": "generation",
        "arm": arm,
        "sequences": len(prompts) * args.k,
        "load_s": round(load_s, 2),
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "cpu_seconds": round(cpu, 2),
        "tokens_per_s": round(tokens / seconds, 2),
        "tokens_per_cpu_s": round(tokens / cpu, 2),
        "row_steps": row_steps,
        "row_steps_per_s": round(row_steps / seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


# --- running the children -----------------------------------------------------------------------------------------


def _child(job: tuple, args: argparse.Namespace, queue) -> None:
    kind, *rest = job
    try:
        fn = {"round": run_round, "dpo": run_dpo, "generation": run_generation}[kind]
        queue.put(fn(*rest, args))
    except BaseException as exc:  # report, don't hang the parent
        queue.put({"part": kind, "job": list(rest), "error": f"{type(exc).__name__}: {exc}"})
        raise


def in_child(job: tuple, args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")  # a fresh interpreter per job: its own peak RSS, no shared torch state
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(job, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def loss_table(ours: list[float], trl: list[float], tol: float, k: int) -> tuple[str, float, bool]:
    lines = [f"{'step':>4} {'ours':>9} {'trl':>9} {'|diff|':>9}"]
    diffs = []
    for step, (a, b) in enumerate(zip(ours, trl, strict=False), start=1):
        diffs.append(abs(a - b))
        lines.append(f"{step:>4} {a:>9.5f} {b:>9.5f} {abs(a - b):>9.2e}")
    first = diffs[:k]
    worst = max(first) if first else float("nan")
    return "\n".join(lines), worst, bool(first) and worst <= tol and len(ours) == len(trl)


def summarise_head_to_head(runs: list[dict], key: str, group: str | None) -> dict:
    """Median of ``key`` per arm (per group), and ours ÷ baseline per repeat (the arms of one repeat ran back to
    back, so their ratio is the least noisy figure)."""
    out = {}
    groups = sorted({r.get(group) for r in runs}) if group else [None]
    for g in groups:
        mine = [r for r in runs if (r.get(group) if group else None) == g]
        ours = [r[key] for r in mine if r["arm"] == "ours"]
        base = [r[key] for r in mine if r["arm"] != "ours"]
        ratios = [round(a / b, 3) for a, b in zip(ours, base, strict=False) if b]
        out[g or "all"] = {
            f"ours_{key}": statistics.median(ours) if ours else None,
            f"baseline_{key}": statistics.median(base) if base else None,
            "ratio_per_repeat": ratios,
            "ratio_median": statistics.median(ratios) if ratios else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {PARTS}")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each child")
    parser.add_argument("--repeats", type=int, default=2, help="runs per head-to-head arm, order alternating")
    # the round
    parser.add_argument("--prompts", type=int, default=8, help="train prompts the round generates for (P)")
    parser.add_argument("--k", type=int, default=4, help="candidates per prompt (K); also for --parts generation")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="round and generation head-to-head")
    parser.add_argument("--policy-steps", type=int, default=4, help="DPO optimiser steps in the round")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per DPO step (round and head-to-head)")
    parser.add_argument("--eval-prompts", type=int, default=4, help="eval-split prompts of the round's head-to-head")
    parser.add_argument("--train-prompts", type=int, default=200, help="train-split prompts imported")
    parser.add_argument("--labels", type=int, default=64, help="judgments given before the round")
    parser.add_argument("--keep", action="store_true", help="keep the round's temporary var folder")
    # DPO head-to-head
    parser.add_argument("--dpo-steps", type=int, default=4)
    parser.add_argument("--dpo-pairs", type=int, default=16, help="hh-rlhf pairs (the last of the workload's order)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per prompt + answer in DPO")
    parser.add_argument("--lora-lr", type=float, default=5e-5)
    parser.add_argument("--full-lr", type=float, default=5e-6)
    parser.add_argument("--modes", default="lora", help="DPO modes, comma-separated: lora, full")
    parser.add_argument("--loss-k", type=int, default=4, help="first k losses that must agree")
    parser.add_argument("--loss-tol", type=float, default=2e-3, help="absolute tolerance on those losses")
    # generation head-to-head
    parser.add_argument("--gen-prompts", type=int, default=4)
    parser.add_argument("--gen-batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.prompts, args.k, args.max_new_tokens, args.policy_steps = 2, 2, 8, 1
        args.batch_size, args.eval_prompts, args.train_prompts, args.labels = 2, 2, 8, 8
        args.dpo_steps, args.dpo_pairs, args.max_length, args.loss_k = 2, 4, 128, 2
        args.gen_prompts, args.gen_batch_size = 2, 4
    parts = args.parts.split(",")
    modes = args.modes.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}")
    if unknown := set(modes) - {"lora", "full"}:
        parser.error(f"unknown modes {sorted(unknown)}")

    report = {"machine": machine(), "workload": WORKLOAD, "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(report["machine"]))
    print(f"workload: {WORKLOAD}", flush=True)
    started = time.perf_counter()
    failed = False

    if "round" in parts:
        print(
            f"\n== one policy round: P={args.prompts} prompts x K={args.k}, max_new_tokens={args.max_new_tokens}, "
            f"{args.policy_steps} DPO steps of {args.batch_size} pairs (LoRA r=8), {args.eval_prompts} eval prompts, "
            f"{args.labels} labels ==",
            flush=True,
        )
        result = in_child(("round",), args)
        report["round"] = result
        print(json.dumps(result), flush=True)
        if "error" in result and "status" not in result:
            failed = True
        else:
            total = sum(v or 0 for v in result["steps"].values())
            print(f"{'step':<10} {'seconds':>8} {'share':>6}")
            for name, seconds in result["steps"].items():
                print(f"{name:<10} {seconds:>8.1f} {seconds / total:>6.1%}")
            print(
                f"{'total':<10} {total:>8.1f}   (round_run wall {result['wall_s']} s, "
                f"CPU {result['cpu_s']} s in the round's process)",
                flush=True,
            )

    if "dpo" in parts:
        print(
            f"\n== DPO steps/s: ours vs plain TRL DPOTrainer, {args.dpo_steps} steps of {args.batch_size} pairs, "
            f"{args.dpo_pairs} pairs, max_length {args.max_length}, modes {modes}, {args.repeats} repeats ==",
            flush=True,
        )
        runs = []
        for rep in range(args.repeats):
            for mode in modes:
                for arm in ("ours", "trl") if rep % 2 == 0 else ("trl", "ours"):
                    result = in_child(("dpo", arm, mode), args)
                    result["repeat"] = rep
                    runs.append(result)
                    print(json.dumps(result), flush=True)
                    failed |= "error" in result
        ok = [r for r in runs if "error" not in r]
        report["dpo"] = {"runs": runs, "summary": {}}
        for mode in modes:
            mine = [r for r in ok if r["mode"] == mode]
            ours = next((r for r in mine if r["arm"] == "ours"), None)
            trl = next((r for r in mine if r["arm"] == "trl"), None)
            if ours is None or trl is None:
                continue
            table, worst, same = loss_table(ours["losses"], trl["losses"], args.loss_tol, args.loss_k)
            print(f"\nloss per step, {mode} (repeat 0):\n{table}")
            print(
                f"first {args.loss_k} losses: max |diff| {worst:.2e} -> "
                f"{'equal' if same else 'NOT equal'} within {args.loss_tol}"
            )
            summary = summarise_head_to_head(mine, "steps_per_s", None)["all"]
            summary_train = summarise_head_to_head(mine, "train_steps_per_s", None)["all"]
            summary_cpu = summarise_head_to_head(mine, "steps_per_cpu_s", None)["all"]
            report["dpo"]["summary"][mode] = {
                **summary,
                "train_only": summary_train,
                "per_cpu_second": summary_cpu,
                "loss_max_abs_diff_first_k": worst,
                "equal_loss_curve": same,
            }
            print(json.dumps({mode: report["dpo"]["summary"][mode]}), flush=True)

    if "generation" in parts:
        print(
            f"\n== generation tokens/s: generate_candidates vs plain model.generate(do_sample=True), "
            f"{args.gen_prompts} prompts x K={args.k}, batch {args.gen_batch_size}, "
            f"max_new_tokens={args.max_new_tokens}, {args.repeats} repeats ==",
            flush=True,
        )
        runs = []
        for rep in range(args.repeats):
            for arm in ("ours", "plain") if rep % 2 == 0 else ("plain", "ours"):
                result = in_child(("generation", arm), args)
                result["repeat"] = rep
                runs.append(result)
                print(json.dumps(result), flush=True)
                failed |= "error" in result
        ok = [r for r in runs if "error" not in r]
        report["generation"] = {
            "runs": runs,
            "tokens_per_s": summarise_head_to_head(ok, "tokens_per_s", None)["all"],
            "row_steps_per_s": summarise_head_to_head(ok, "row_steps_per_s", None)["all"],
            "tokens_per_cpu_s": summarise_head_to_head(ok, "tokens_per_cpu_s", None)["all"],
        }
        keys = ("tokens_per_s", "row_steps_per_s", "tokens_per_cpu_s")
        print(json.dumps({k: report["generation"][k] for k in keys}), flush=True)

    report["total_minutes"] = round((time.perf_counter() - started) / 60, 1)
    print(f"\ntotal {report['total_minutes']} min; loadavg now {[round(x, 2) for x in __import__('os').getloadavg()]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    assert ROOT.is_dir()
    sys.exit(main())
