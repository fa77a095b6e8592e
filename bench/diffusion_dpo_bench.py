"""Does Diffusion-DPO (training/ml/diffusion_dpo.py) raise the digits demo's hidden preference? And how fast is it?

Prints figures; it is not a test.

Workload ("digits-oracle"): the demo's 60-epoch class-conditional generator and its digit classifier
(``training.ml.digits``; trained here with ``--prepare`` if the models folder lacks them). Per seed and per round:

1. generate ``--k`` images for each of the first ``--prompts`` digit prompts with the current generator (DDIM,
   ``--steps-gen`` steps, seeds disjoint from the evaluation's and from other seeds' and rounds');
2. rank them by the classifier's confidence in the prompted digit — the oracle, not a reward model, so this measures
   the optimiser alone;
3. pairs: ``best-worst`` (one per prompt: what a round does, ``training.ml.selection.select_best_worst``) or
   ``gap:<g>`` (every ordered pair of a prompt whose confidences differ by more than g);
4. ``train_diffusion_dpo`` for ``--dpo-steps`` steps (β, learning rate, batch, LoRA rank from the flags), saved with
   ``save_diffusion_dpo``; the next round starts from that folder (so its reference is the previous round's model,
   as in the app);
5. the mean classifier confidence on a fixed evaluation set: ``--eval-per-digit`` images per digit, fixed seeds
   (``--eval-seed``), 25 DDIM steps. "before" is the starting generator on the same seeds, so the gain is paired.

The measurement's own noise is the spread of "before" over ``--noise-seeds`` other evaluation seed sets: a gain
smaller than that could be luck of the draw. Sweeps: every value flag takes a comma list and the product runs.

    .venv/bin/python bench/diffusion_dpo_bench.py --prepare                       # defaults, 3 seeds
    .venv/bin/python bench/diffusion_dpo_bench.py --beta 50,500,5000 --seeds 0    # a β sweep, one seed
    .venv/bin/python bench/diffusion_dpo_bench.py --rounds 3 --seeds 0,1,2        # iterated rounds
    .venv/bin/python bench/diffusion_dpo_bench.py --timing-only                   # images/s, steps/s, plain loop
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = Path(tempfile.gettempdir()) / "ddpo" / "models" / "digits-16px-60ep"


def _setup(threads: int) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(threads)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


# --- models -------------------------------------------------------------------------------------------------------


def prepare(models: Path, *, epochs: int) -> None:
    from training.ml.digits import train_digit_classifier, train_digits_generator

    if not (models / "classifier").is_dir():
        train_digit_classifier(models / "classifier", size=16)
    if not (models / "generator").is_dir():
        started = time.monotonic()
        train_digits_generator(models / "generator", size=16, epochs=epochs)
        print(f"generator trained in {time.monotonic() - started:.0f} s")


class Oracle:
    """The classifier as the scorer of generated images, and the fixed evaluation of a generator."""

    def __init__(self, classifier: Path, *, per_digit: int, eval_steps: int):
        from training.ml.digits import DIGIT_PROMPTS, DigitClassifierPreference

        self.judge = DigitClassifierPreference(classifier)
        self.prompts = list(DIGIT_PROMPTS)
        self.per_digit = per_digit
        self.eval_steps = eval_steps

    def scores(self, prompts: list[str], rows) -> list[list[float]]:
        """rows[i][j] (GeneratedImage of prompts[i]) → its confidence in the prompted digit, same shape."""
        pairs = zip(prompts, rows, strict=True)
        return [self.judge.score([prompt] * len(row), [im.png for im in row]) for prompt, row in pairs]

    def mean_confidence(self, generator, *, base_seed: int) -> float:
        rows = generator.generate(
            self.prompts, k=self.per_digit, num_inference_steps=self.eval_steps, base_seed=base_seed
        )
        return statistics.fmean(s for row in self.scores(self.prompts, rows) for s in row)


def load_generator(path: Path):
    from training.ml.generation.diffusion import load_image_generator

    return load_image_generator(path, batch_size=200)


# --- pairs --------------------------------------------------------------------------------------------------------


def make_pairs(prompts: list[str], rows, scores: list[list[float]], rule: str) -> list[tuple[str, bytes, bytes]]:
    """``best-worst``: one (best, worst) pair per prompt whose best beats its worst; ``gap:<g>``: every (a, b) of a
    prompt with score[a] − score[b] > g."""
    pairs = []
    for prompt, row, row_scores in zip(prompts, rows, scores, strict=True):
        if rule == "best-worst":
            best = max(range(len(row)), key=row_scores.__getitem__)
            worst = min(range(len(row)), key=row_scores.__getitem__)
            if row_scores[best] > row_scores[worst]:
                pairs.append((prompt, row[best].png, row[worst].png))
        elif rule.startswith("gap:"):
            gap = float(rule.removeprefix("gap:"))
            for a, b in itertools.permutations(range(len(row)), 2):
                if row_scores[a] - row_scores[b] > gap:
                    pairs.append((prompt, row[a].png, row[b].png))
        else:
            raise ValueError(f"unknown pair rule {rule!r}")
    return pairs


# --- one run: rounds of generate → rank → Diffusion-DPO → evaluate ------------------------------------------------


def run(setting: dict, *, seed: int, oracle: Oracle, generator_path: Path, args, work: Path) -> dict:
    from training.ml.diffusion_dpo import DiffusionDPOConfig, save_diffusion_dpo, train_diffusion_dpo

    prompts = oracle.prompts[: setting["prompts"]]
    path, per_round = generator_path, []
    for r in range(args.rounds):
        started = time.monotonic()
        generator = load_generator(path)
        # Training seeds: disjoint from the evaluation's (eval-seed + small offsets) by construction.
        base = 1_000_000 + 10_000 * seed + 100 * r
        rows = generator.generate(prompts, k=setting["k"], num_inference_steps=args.steps_gen, base_seed=base)
        scores = oracle.scores(prompts, rows)
        pairs = make_pairs(prompts, rows, scores, setting["pairs"])
        generated = time.monotonic() - started
        config = DiffusionDPOConfig(
            beta=setting["beta"],
            learning_rate=setting["lr"],
            max_steps=setting["dpo_steps"],
            batch_size=setting["batch"],
            lora_r=setting["lora_r"],
            lora_alpha=setting["lora_r"],
            seed=seed * 100 + r,
        )
        model = train_diffusion_dpo(path, pairs, config)
        trained = model.metrics["seconds"]
        path = save_diffusion_dpo(model, work / f"seed{seed}-round{r}")
        after = oracle.mean_confidence(load_generator(path), base_seed=args.eval_seed)
        history = model.metrics["history"]
        per_round.append(
            {
                "round": r + 1,
                "pairs": len(pairs),
                "train_pick_gap": statistics.fmean(max(s) - min(s) for s in scores),
                "first_accuracy": statistics.fmean(h["accuracy"] for h in history[: max(1, len(history) // 10)]),
                "final_accuracy": model.metrics["final_accuracy"],
                "final_margin": model.metrics["final_reward_margin"],
                "policy_mse": model.metrics["final_policy_mse"],
                "reference_mse": model.metrics["final_reference_mse"],
                "after": after,
                "gen_s": round(generated, 1),
                "dpo_s": trained,
            }
        )
    return {"seed": seed, "rounds": per_round}


# --- timing -------------------------------------------------------------------------------------------------------


def timing(generator_path: Path, oracle: Oracle, *, batch: int, steps: int, repeats: int) -> dict:
    """Images/s of generation (25 DDIM steps, 200 images in one batch), Diffusion-DPO steps/s (ours: LoRA, PNG
    decoding, reference by disabling the adapter) and the same loss in a plain diffusers loop (full fine-tune,
    tensors decoded once, reference a frozen copy); alternated A B, B A."""
    import torch

    from training.ml.diffusion_dpo import DiffusionDPOConfig, diffusion_dpo_loss, train_diffusion_dpo

    generator = load_generator(generator_path)
    started = time.monotonic()
    rows = generator.generate(oracle.prompts, k=20, num_inference_steps=25, base_seed=5)
    images_per_s = 200 / (time.monotonic() - started)
    scores = oracle.scores(oracle.prompts, rows)
    pairs = make_pairs(oracle.prompts, rows, scores, "gap:0.2")

    def ours() -> float:
        config = DiffusionDPOConfig(beta=500, learning_rate=1e-4, max_steps=steps, batch_size=batch)
        return steps / train_diffusion_dpo(generator_path, pairs, config).metrics["seconds"]

    def plain() -> float:
        from diffusers import DDPMScheduler, UNet2DModel

        from training.ml.generation.diffusion import png_to_tensor

        unet = UNet2DModel.from_pretrained(generator_path / "unet")
        reference = copy.deepcopy(unet).eval().requires_grad_(False)
        scheduler = DDPMScheduler.from_pretrained(generator_path / "scheduler")
        labels = torch.tensor([oracle.prompts.index(p) for p, _, _ in pairs])
        chosen = torch.stack([png_to_tensor(c, channels=1) for _, c, _ in pairs])  # (P, 1, 16, 16)
        rejected = torch.stack([png_to_tensor(r, channels=1) for _, _, r in pairs])
        optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-5)
        g = torch.Generator().manual_seed(0)
        unet.train()
        started = time.monotonic()
        for _ in range(steps):
            idx = torch.randint(0, len(pairs), (batch,), generator=g)
            x0 = torch.cat([chosen[idx], rejected[idx]])  # (2B, 1, 16, 16)
            y = labels[idx].repeat(2)
            noise = torch.randn((batch, *x0.shape[1:]), generator=g).repeat(2, 1, 1, 1)
            t = torch.randint(0, 1000, (batch,), generator=g).repeat(2)
            noisy = scheduler.add_noise(x0, noise, t)
            pred = unet(noisy, t, class_labels=y).sample
            with torch.no_grad():
                ref = reference(noisy, t, class_labels=y).sample
            loss, _ = diffusion_dpo_loss(
                pred[:batch], pred[batch:], ref[:batch], ref[batch:], noise[:batch], noise[batch:], beta=500
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
        return steps / (time.monotonic() - started)

    ours_rates, plain_rates = [], []
    for i in range(repeats):
        for arm in (ours, plain) if i % 2 == 0 else (plain, ours):
            (ours_rates if arm is ours else plain_rates).append(arm())
    return {
        "images_per_s": images_per_s,
        "dpo_batch_pairs": batch,
        "ours_steps_per_s": statistics.fmean(ours_rates),
        "plain_steps_per_s": statistics.fmean(plain_rates),
        "ours_runs": ours_rates,
        "plain_runs": plain_rates,
    }


# --- main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="holds generator/ and classifier/")
    parser.add_argument("--prepare", action="store_true", help="train the models that --models lacks")
    parser.add_argument("--epochs", type=int, default=60, help="generator epochs for --prepare")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--beta", type=_floats, default=[2000.0])
    parser.add_argument("--lr", type=_floats, default=[1e-4])
    parser.add_argument("--dpo-steps", type=_ints, default=[100])
    parser.add_argument("--batch", type=_ints, default=[8])
    parser.add_argument("--lora-r", type=_ints, default=[8])
    parser.add_argument("--k", type=_ints, default=[8], help="candidates per prompt")
    parser.add_argument("--prompts", type=_ints, default=[10], help="digit prompts per round (first n)")
    parser.add_argument("--pairs", type=lambda s: s.split(","), default=["best-worst"], help="best-worst, gap:<g>")
    parser.add_argument("--steps-gen", type=int, default=25, help="DDIM steps of the training images")
    parser.add_argument("--eval-per-digit", type=int, default=20)
    parser.add_argument("--eval-steps", type=int, default=25)
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--noise-seeds", type=int, default=5, help="evaluation seed sets for the noise figure")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing", action="store_true", help="also time generation and DPO steps")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--timing-steps", type=int, default=40)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    _setup(args.threads)
    import torch

    if args.prepare:
        prepare(args.models, epochs=args.epochs)
    generator_path = args.models / "generator"
    oracle = Oracle(args.models / "classifier", per_digit=args.eval_per_digit, eval_steps=args.eval_steps)
    out: dict = {"torch": torch.__version__, "threads": args.threads}
    out["args"] = {key: str(value) for key, value in vars(args).items()}

    if args.timing or args.timing_only:
        out["timing"] = timing(generator_path, oracle, batch=args.batch[0], steps=args.timing_steps, repeats=2)
        t = out["timing"]
        print(
            f"timing: generation {t['images_per_s']:.1f} images/s (25 DDIM steps, batch 200); Diffusion-DPO "
            f"(batch {t['dpo_batch_pairs']} pairs = {2 * t['dpo_batch_pairs']} images) ours "
            f"{t['ours_steps_per_s']:.2f} steps/s, plain diffusers loop {t['plain_steps_per_s']:.2f} steps/s "
            f"(ratio {t['ours_steps_per_s'] / t['plain_steps_per_s']:.2f})",
            flush=True,
        )
        if args.timing_only:
            _write(args.json, out)
            return

    base = load_generator(generator_path)
    before = oracle.mean_confidence(base, base_seed=args.eval_seed)
    noise = [before] + [
        oracle.mean_confidence(base, base_seed=args.eval_seed + 1 + i) for i in range(args.noise_seeds - 1)
    ]
    out["before"] = before
    out["noise"] = noise
    print(
        f"before (eval seed {args.eval_seed}, {10 * args.eval_per_digit} images): {before:.4f}; over "
        f"{len(noise)} eval seed sets: {statistics.fmean(noise):.4f} ± {statistics.pstdev(noise):.4f} (std)",
        flush=True,
    )

    grid = [
        dict(zip(keys, values, strict=True))
        for keys in [("beta", "lr", "dpo_steps", "batch", "lora_r", "k", "prompts", "pairs")]
        for values in itertools.product(
            args.beta, args.lr, args.dpo_steps, args.batch, args.lora_r, args.k, args.prompts, args.pairs
        )
    ]
    out["settings"] = []
    with tempfile.TemporaryDirectory(prefix="ddpo-bench-") as tmp:
        for n, setting in enumerate(grid):
            runs = []
            for seed in args.seeds:
                work = Path(tmp) / f"s{n}"
                work.mkdir(exist_ok=True)
                result = run(setting, seed=seed, oracle=oracle, generator_path=generator_path, args=args, work=work)
                runs.append(result)
                line = " ".join(
                    f"r{x['round']}: {x['after']:.4f} ({x['after'] - before:+.4f}, {x['pairs']} pairs, "
                    f"acc {x['first_accuracy']:.2f}→{x['final_accuracy']:.2f}, margin {x['final_margin']:.2f}, "
                    f"mse {x['policy_mse']:.4f}/{x['reference_mse']:.4f}, {x['dpo_s']:.0f}+{x['gen_s']:.0f}s)"
                    for x in result["rounds"]
                )
                print(f"{_label(setting)} seed {seed}: {line}", flush=True)
            gains = [r["rounds"][-1]["after"] - before for r in runs]
            spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
            print(f"== {_label(setting)}: gain {statistics.fmean(gains):+.4f} ± {spread:.4f} over {len(gains)} seeds")
            out["settings"].append({"setting": setting, "runs": runs, "gains": gains})
    _write(args.json, out)


def _label(setting: dict) -> str:
    s = setting
    return (
        f"β={s['beta']:g} lr={s['lr']:g} steps={s['dpo_steps']} batch={s['batch']} r={s['lora_r']} "
        f"K={s['k']} prompts={s['prompts']} {s['pairs']}"
    )


def _write(path: Path | None, out: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
