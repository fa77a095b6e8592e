"""The simulated flywheel (``manage.py flywheel --simulate``'s loop, ``training.flywheel.flywheel_run``) on the real
embedded models, repeated over seeds: does the loop raise a hidden judge's reward beyond the seed noise?

Prints figures; it is not a test. Policy SmolLM2-135M-Instruct (``builtin:smollm2``), reward model all-MiniLM-L6-v2
(``builtin:minilm``), CPU. Workload: ``bench/loop_workload.py`` (hh-rlhf harmless-base first turns; the train
prompts start with one unjudged hh-rlhf pair each, so the first round has something to label).

Hidden judge: the hh-rlhf reward model of ``manage.py hidden_preference_train`` (MiniLM on the shipped hh-rlhf
pairs). It is trained once, into ``--judge-var`` (default ``var/flywheel-judge``), and reused by every seed; or
pass ``--hidden-preference`` (a saved reward-model folder, or ``keywords:w1,w2``).

Per seed, in its own spawned child process with a fresh var folder (SQLite) under a temporary folder: the project
is imported, then ``flywheel_run`` with ``seed`` = the seed: round 0 measures the base policy; each round the
simulated annotators (``--annotators``, label noise ``--noise``) give ``--labels`` judgments through the queue's
services by the hidden judge, the scheduler starts a policy round that runs in-process, and the hidden judge scores
the new active policy's answers to the eval prompts (``--measure-prompts`` × ``--measure-samples``, the same seeds
every round). The seed changes the annotators' noise, the round's training seed and the measurement's sampling.

Figures: each seed's per-round table (as ``manage.py flywheel`` prints it); per seed the gain last round − round 0
of the hidden reward; over seeds its mean ± sample std, the spread (std) of the round-0 measurement (same base
policy, only the sampling seeds differ) and of the last round's.

    .venv/bin/python bench/flywheel_bench.py                       # 3 rounds x 3 seeds (time: bench/README.md)
    .venv/bin/python bench/flywheel_bench.py --rounds 2 --seeds 2  # what fits
    .venv/bin/python bench/flywheel_bench.py --quick               # smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_workload import ROOT, WORKLOAD, django_setup, hh_project, machine, setup_env

MODALITIES = ("text", "image")
JUDGE_DIRNAME = "hidden-preference-hh-rlhf"  # training.hidden_preference.default_hidden_preference_path()


def judge_path(args: argparse.Namespace) -> str:
    """The hidden judge: ``--hidden-preference``, or the hh-rlhf judge in ``--judge-var`` (trained now if absent)."""
    if args.hidden_preference:
        return args.hidden_preference
    path = args.judge_var / "models" / JUDGE_DIRNAME
    if not path.is_dir():
        print(f"training the hidden judge once into {path} (manage.py hidden_preference_train) ...", flush=True)
        env = {**os.environ, "TANDEM_VAR_DIR": str(args.judge_var), "HF_HUB_OFFLINE": "1"}
        env.setdefault("DEBUG", "1")
        subprocess.run([sys.executable, "manage.py", "hidden_preference_train"], cwd=ROOT, env=env, check=True)
    return str(path)


def flywheel_settings(args: argparse.Namespace) -> dict:
    return {
        "backbone": "builtin:minilm",
        "policy": "builtin:smollm2",
        "prompts_per_round": args.prompts,
        "candidates_per_prompt": args.k,
        "max_new_tokens": args.max_new_tokens,
        "policy_max_steps": args.policy_steps,
        "policy_batch_size": args.batch_size,
        "policy_learning_rate": args.policy_lr,
        "eval_prompts": args.round_eval_prompts,
        "push_active_pairs": args.push_active_pairs,
        "human_pairs": not args.no_human_pairs,
    }


def digits_project(args: argparse.Namespace):
    """The image demo (``training.digits_demo``) in this seed's database, its models trained once into
    ``--digits-models`` and shared by every seed; returns the project and its classifier judge's spec."""
    from django.contrib.auth import get_user_model

    from training.digits_demo import digits_demo_load, digits_demo_prepare

    artifacts = digits_demo_prepare(models_dir=args.digits_models)
    owner = get_user_model().objects.create_user("bench-owner")
    project = digits_demo_load(artifacts=artifacts, owner=owner, users=[])
    return project, f"digits-classifier:{artifacts.classifier}"


def run_seed(seed: int, judge: str, args: argparse.Namespace) -> dict:
    setup_env(args.threads)
    var_dir = Path(tempfile.mkdtemp(prefix=f"flywheel-bench-s{seed}-"))
    if args.modality == "image":
        os.environ["TRAINING_BACKBONE_ROOTS"] = str(args.digits_models)  # the shared models, outside var_dir
    try:
        django_setup(var_dir)
        from training.flywheel import HEADER, FlywheelConfig, flywheel_run, format_row
        from training.ml.hidden_preference import hidden_preference_from_spec

        if args.modality == "image":
            project, judge = digits_project(args)
        else:
            project = hh_project(
                var_dir=var_dir,
                eval_prompts=args.measure_prompts,
                train_prompts=args.train_prompts,
                training_settings=flywheel_settings(args),
            )
        preference = hidden_preference_from_spec(judge)
        config = FlywheelConfig(
            rounds=args.rounds,
            labels_per_round=args.labels,
            annotators=args.annotators,
            noise=args.noise,
            eval_samples=args.measure_samples,
            eval_prompts=args.measure_prompts,
            seed=seed,
        )
        print(f"seed {seed}: project #{project.pk}, hidden preference {preference.name}\n{HEADER}", flush=True)
        t0 = time.perf_counter()
        # Seeds running at once share the output: each live row names its seed.
        rows = flywheel_run(
            project=project,
            preference=preference,
            config=config,
            on_row=lambda row: print(f"{format_row(row)}  [seed {seed}]", flush=True),
        )
        return {
            "seed": seed,
            "minutes": round((time.perf_counter() - t0) / 60, 1),
            "table": [HEADER] + [format_row(row) for row in rows],
            "rows": [
                {
                    "round": r.round,
                    "judgments": r.judgments,
                    "rm_accuracy": r.rm_accuracy,
                    "hidden_reward": r.hidden_reward,
                    "hidden_win_rate": r.hidden_win_rate,
                    "kl": r.kl,
                    "length": r.length,
                    "step_seconds": r.step_seconds,
                }
                for r in rows
            ],
        }
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def _child(seed: int, judge: str, args: argparse.Namespace, queue) -> None:
    try:
        queue.put(run_seed(seed, judge, args))
    except BaseException as exc:  # report, don't hang the parent
        queue.put({"seed": seed, "error": f"{type(exc).__name__}: {exc}"})
        raise


def _result(seed: int, proc, queue) -> dict:
    """The seed's result, or an error once its process is gone without one (killed: out of memory, say)."""
    import queue as queues

    while True:
        try:
            return queue.get(timeout=10)
        except queues.Empty:
            if not proc.is_alive():
                return {"seed": seed, "error": f"its process ended without a result (exit code {proc.exitcode})"}


def run_seeds(judge: str, args: argparse.Namespace) -> list[dict]:
    """Each seed in a fresh spawned interpreter, ``--parallel`` of them at a time; results in seed order."""
    ctx = mp.get_context("spawn")
    pending, running, results = list(args.seed_list), [], {}
    while pending or running:
        while pending and len(running) < args.parallel:
            seed, queue = pending.pop(0), ctx.Queue()
            proc = ctx.Process(target=_child, args=(seed, judge, args, queue))
            proc.start()
            running.append((seed, proc, queue))
        seed, proc, queue = running.pop(0)  # seeds take about as long as each other: wait in order
        results[seed] = _result(seed, proc, queue)
        proc.join()
        if "error" in results[seed]:
            print(json.dumps(results[seed]), flush=True)
    return [results[seed] for seed in sorted(results)]


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _fmt(value: float | None, spec: str = "+.4f") -> str:
    return "—" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--modality",
        default="text",
        choices=MODALITIES,
        help="text: hh-rlhf prompts, SmolLM2 and MiniLM; image: the digits demo (its own round settings; the "
        "hidden judge is its digit classifier)",
    )
    parser.add_argument(
        "--digits-models", type=Path, default=ROOT / "var" / "models", help="image: where the demo's models are cached"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 1 seed, tiny sizes")
    parser.add_argument("--rounds", type=int, default=3, help="policy rounds per seed (N)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1, each in a fresh var folder (S)")
    parser.add_argument("--seed-list", help="these seeds instead, comma-separated (e.g. one to run again)")
    parser.add_argument("--prompts", type=int, default=8, help="train prompts generated for per round")
    parser.add_argument("--k", type=int, default=4, help="candidates per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--labels", type=int, default=48, help="simulated judgments before each round")
    parser.add_argument("--policy-steps", type=int, default=16, help="DPO optimiser steps per round")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per DPO step")
    parser.add_argument("--policy-lr", type=float, default=2e-4, help="DPO learning rate (the product's: 5e-5)")
    parser.add_argument("--round-eval-prompts", type=int, default=2, help="the round's own head-to-head prompts")
    parser.add_argument("--push-active-pairs", type=int, default=8, help="pairs each round pushes to the queue")
    parser.add_argument("--measure-prompts", type=int, default=16, help="eval prompts the hidden judge measures on")
    parser.add_argument("--measure-samples", type=int, default=2, help="answers per eval prompt when measuring")
    parser.add_argument("--train-prompts", type=int, default=200, help="train-split prompts imported")
    parser.add_argument(
        "--no-human-pairs", action="store_true", help="DPO on the reward model's pairs alone (human_pairs: false)"
    )
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.1, help="share of coin-flip labels")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each seed's process")
    parser.add_argument("--parallel", type=int, default=1, help="seeds run at once (give each --threads 1)")
    parser.add_argument("--hidden-preference", help="a saved reward-model folder or keywords:w1,w2")
    parser.add_argument("--judge-var", type=Path, default=ROOT / "var" / "flywheel-judge", help="where the judge is")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seed_list = None
        args.rounds, args.seeds, args.prompts, args.k, args.max_new_tokens = 1, 1, 2, 2, 8
        args.labels, args.policy_steps, args.batch_size, args.round_eval_prompts = 4, 1, 2, 2
        args.push_active_pairs, args.measure_prompts, args.measure_samples, args.train_prompts = 2, 2, 2, 8

    args.seed_list = [int(x) for x in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    args.seeds = len(args.seed_list)
    report = {"machine": machine(), "workload": WORKLOAD, "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(report["machine"]))
    print(
        f"workload: {WORKLOAD}\n{args.rounds} rounds x {args.seeds} seeds; per round {args.labels} labels, "
        f"{args.prompts} prompts x K={args.k}, max_new_tokens={args.max_new_tokens}, {args.policy_steps} DPO steps "
        f"of {args.batch_size} pairs; measured on {args.measure_prompts} eval prompts x {args.measure_samples}",
        flush=True,
    )
    judge = judge_path(args) if args.modality == "text" else "digits-classifier (per seed)"
    report["judge"] = judge
    started = time.perf_counter()
    runs = run_seeds(judge, args)
    report["runs"] = runs
    done = [r for r in runs if "error" not in r]

    print("\n== per seed ==")
    for run in done:
        print(f"seed {run['seed']} ({run['minutes']} min)")
        print("\n".join(run["table"]))
    start = [r["rows"][0]["hidden_reward"] for r in done]
    end = [r["rows"][-1]["hidden_reward"] for r in done]
    gains = [e - s for s, e in zip(start, end, strict=True)]
    summary = {
        "seeds": len(done),
        "rounds": args.rounds,
        "gain_per_seed": [round(g, 4) for g in gains],
        "gain_mean": statistics.fmean(gains) if gains else None,
        "gain_std": _std(gains),
        "round0_mean": statistics.fmean(start) if start else None,
        "round0_std": _std(start),
        "last_std": _std(end),
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    report["summary"] = summary
    print("\n== hidden-preference reward: last round − round 0 ==")
    for run, s, e, g in zip(done, start, end, gains, strict=True):
        print(f"seed {run['seed']}: round 0 {s:.4f} -> round {args.rounds} {e:.4f}  gain {g:+.4f}")
    print(
        f"gain {_fmt(summary['gain_mean'])} ± {_fmt(summary['gain_std'], '.4f')} (mean ± std over "
        f"{len(done)} seeds); round-0 spread (std) {_fmt(summary['round0_std'], '.4f')}, last-round spread "
        f"{_fmt(summary['last_std'], '.4f')}; {summary['minutes']} min"
    )
    noise = max((x for x in (summary["round0_std"], summary["last_std"]) if x is not None), default=None)
    if noise is not None and summary["gain_mean"] is not None:
        verdict = "beyond" if summary["gain_mean"] > 2 * noise else "NOT beyond"
        print(f"the mean gain is {verdict} twice the larger spread ({2 * noise:.4f})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if len(done) < len(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
