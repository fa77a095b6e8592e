"""Label quality against bad annotators: simulated crowds label real hh-rlhf pairs through the queue, and a reward
model trains on their labels with and without the reliability weights and flags of ``annotation.quality``.

Prints figures; it is not a test.

**Data**: ``training/data/hh-rlhf/harmless-base_test.public.jsonl`` (MIT), split by the dialogue's first human turn
(as ``training.ml.hh_rlhf``): ~80 % of rows are imported as comparisons to annotate, ~20 % are the held-out set,
scored against hh-rlhf's own labels. The hh-rlhf ``chosen`` answer is the truth the simulation knows.

**Crowd**: 10 annotators, overlap 3 (each comparison judged by 3), 5 % of comparisons gold (answered by everyone).
Honest annotators agree with hh-rlhf with probability ``--honest`` (0.85). In a *poisoned* crowd 2 of the 10 (20 %)
are adversarial (always the worse answer), always-left, or random clickers (``annotation.demo.simulated_annotators``).
Every label goes through ``comparison_claim`` and ``judgment_submit``, on a fresh SQLite database per crowd.

**Arms** per crowd: ``uniform`` — every label weighs 1 (what training did before issue 18); ``quality`` —
``quality_recompute`` then every annotator it flags is excluded (what a researcher reviewing the table would do)
and the rest weigh their reliability weight (``training_weights``), exactly what a round passes to the pair builder.

**Reward model** (``--reward``): a linear Bradley–Terry head, trained on the weighted pairs with
``training.ml.losses.bradley_terry_loss`` (full batch, Adam), over frozen all-MiniLM-L6-v2 embeddings of the
dialogue's end with the answer plus the answer's log length (``minilm``; the embeddings are computed once and
cached under ``var/bench-cache/``), or over a hashed bag of words (``bow``, the default: as accurate on these
pairs, and far cheaper; bench/README.md). The features are frozen so every crowd, arm and seed fits on a CPU, and
so two arms of one seed differ only in their labels. ``finetune`` trains the round's own model instead
(:class:`FineTuned`): what issue 18's criterion asks for, minutes per arm. ``label accuracy`` — the
weighted share of training pairs that agree with hh-rlhf — shows the defence directly. The drops against the clean
crowd are paired by seed (same held-out pairs).

    .venv/bin/python bench/quality_bench.py                  # clean + 3 poisoned crowds, 3 seeds
    .venv/bin/python bench/quality_bench.py --seeds 1 --crowds clean,adversarial   # smoke run
    .venv/bin/python bench/quality_bench.py --reward finetune --crowds clean,adversarial   # the criterion (GPU)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_workload import ROOT, django_setup, setup_env

DATA = ROOT / "training" / "data" / "hh-rlhf" / "harmless-base_test.public.jsonl"
CROWDS = ("clean", "adversarial", "always_left", "random")


def hh_rows() -> list[dict]:
    """``[{"first_turn", "prompt", "chosen", "rejected"}]`` as ``training.ml.hh_rlhf`` cuts them."""
    rows = []
    for line in DATA.read_text().splitlines():
        row = json.loads(line)
        chosen, rejected = row["chosen"], row["rejected"]
        cut_c, cut_r = chosen.rfind("\n\nAssistant:") + 12, rejected.rfind("\n\nAssistant:") + 12
        if cut_c < 12 or chosen[:cut_c] != rejected[:cut_r]:
            continue
        if (
            not chosen[cut_c:].strip()
            or not rejected[cut_r:].strip()
            or chosen[cut_c:].strip() == rejected[cut_r:].strip()
        ):
            continue  # the importer refuses an empty candidate; identical answers teach nothing
        rows.append(
            {
                "first_turn": row["chosen"].split("\n\nAssistant:", 1)[0],
                "prompt": chosen[:cut_c],
                "chosen": chosen[cut_c:].strip(),
                "rejected": rejected[cut_r:].strip(),
            }
        )
    return rows


def split(rows: list[dict], eval_share: float = 0.2) -> tuple[list[dict], list[dict]]:
    def side(row):
        return int(hashlib.sha256(row["first_turn"].encode()).hexdigest()[:8], 16) / 16**8 < eval_share

    return [r for r in rows if not side(r)], [r for r in rows if side(r)]


class Featuriser:
    """(prompt, answer) → hashed bag of words and bigrams of the answer (2^14 dimensions, L2-normalised counts) plus
    its log length, dense. Trains in seconds; too weak to tell the arms apart on ~200 held-out pairs."""

    def __init__(self):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectoriser = HashingVectorizer(n_features=2**14, ngram_range=(1, 2), alternate_sign=False)

    def __call__(self, pairs: list[tuple[str, str]]):
        import numpy as np
        import torch

        answers = [a for _, a in pairs]
        words = torch.tensor(self.vectoriser.transform(answers).toarray(), dtype=torch.float32)  # (N, 16384)
        lengths = torch.tensor(np.log1p([[len(a)] for a in answers]), dtype=torch.float32)  # (N, 1)
        return torch.cat([words, lengths], dim=1)  # (N, 16385)


class MiniLMFeaturiser:
    """(prompt, answer) → the frozen all-MiniLM-L6-v2 sentence embedding (mean-pooled and normalised, as the model
    was trained) of the dialogue's end with the answer (the last 256 tokens), plus the answer's log length.

    The embeddings are computed once per text and kept in ``cache`` (a file keyed by the text's SHA-256): every arm,
    crowd and seed then trains a linear head in seconds, so the arms differ only in their labels."""

    def __init__(self, cache: Path):
        self.cache_path, self.cache = cache, {}
        if cache.exists():
            import torch

            self.cache = torch.load(cache)
        self.model = None

    def _embed(self, texts: list[str]):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from training.ml.backbones import minilm_path

        if self.model is None:
            self.tokenizer = AutoTokenizer.from_pretrained(minilm_path())
            self.tokenizer.truncation_side = "left"  # keep the answer, drop the dialogue's start
            self.model = AutoModel.from_pretrained(minilm_path()).eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                batch = self.tokenizer(
                    texts[i : i + 32], truncation=True, max_length=256, padding=True, return_tensors="pt"
                )
                hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
                mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1)  # (B, 384)
                out.extend(torch.nn.functional.normalize(pooled, dim=-1))
        return out

    def __call__(self, pairs: list[tuple[str, str]]):
        import math

        import torch

        texts = [f"{prompt}{answer}" for prompt, answer in pairs]
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items())
        if missing:
            for (key, _), vector in zip(missing, self._embed([t for _, t in missing]), strict=True):
                self.cache[key] = vector
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.cache, self.cache_path)
        lengths = torch.tensor([[math.log1p(len(a))] for _, a in pairs])  # (N, 1)
        return torch.cat([torch.stack([self.cache[k] for k in keys]), lengths], dim=1)  # (N, 385)


def train_and_score(featurise, train: list[tuple[str, str, str, float]], held_out: list[dict], seed: int) -> float:
    """Linear Bradley–Terry reward on the features: train on (prompt, chosen answer, rejected answer, weight),
    accuracy on held-out rows."""
    import torch

    from training.ml.losses import bradley_terry_loss

    torch.manual_seed(seed)
    train = [t for t in train if t[3] > 0]
    chosen = featurise([(p, c) for p, c, _, _ in train])  # (N, D)
    rejected = featurise([(p, r) for p, _, r, _ in train])  # (N, D)
    weight = torch.tensor([w for *_, w in train])
    head = torch.nn.Parameter(torch.zeros(chosen.shape[1]))  # (D,)
    optimiser = torch.optim.Adam([head], lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        loss, _ = bradley_terry_loss(chosen @ head, rejected @ head, weight=weight)
        loss = loss + 1e-3 * head.pow(2).sum()  # L2: many weights for ~800 prompts
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        good = featurise([(r["prompt"], r["chosen"]) for r in held_out]) @ head
        bad = featurise([(r["prompt"], r["rejected"]) for r in held_out]) @ head
    return (good > bad).float().mean().item()


class FineTuned:
    """The round's own reward model instead of a frozen-feature head: all-MiniLM-L6-v2 fine-tuned with
    ``training.ml.reward.train_reward_model`` on the weighted pairs, at the schedule that scored best on hh-rlhf
    (lr 1e-4, 10 % warm-up, 2 epochs, the dialogue's last 256 tokens; bench/README.md, ``rm_bench.py``), scored on
    the held-out pairs. Minutes per arm on a CPU (~13 for a crowd's ~2,400 judgments on a quiet 2-core machine):
    meant for a GPU, or capped with ``--finetune-steps`` for a smoke run."""

    def __init__(self, max_steps: int = 0):
        self.max_steps = max_steps

    def __call__(self, train: list[tuple[str, str, str, float]], held_out: list[dict], seed: int) -> float:
        from training.ml.backbones import minilm_path
        from training.ml.pairs import PairSet, PreferencePair
        from training.ml.reward import RewardTrainingConfig, train_reward_model

        def pair(n: int, prompt: str, chosen: str, rejected: str, weight: float) -> PreferencePair:
            return PreferencePair(
                prompt_id=n, prompt=prompt, chosen_id=f"{n}c", chosen=chosen, rejected_id=f"{n}r", rejected=rejected,
                label=1.0, margin=0.0, weight=weight, judgment_ids=(n,), comparison_id=n, annotator_id=None,
                agreement=None,
            )  # fmt: skip

        pairs = tuple(pair(n, *t) for n, t in enumerate(train) if t[3] > 0)
        config = RewardTrainingConfig(
            backbone=str(minilm_path()),
            max_length=256,
            separator="",
            learning_rate=1e-4,
            warmup_ratio=0.1,
            num_epochs=2.0,
            max_steps=self.max_steps or -1,
            seed=seed,
            logging_steps=10_000,  # one aggregate at the end, no log lines between arms
        )
        model = train_reward_model(PairSet(train=pairs, eval=(), snapshot_id="quality-bench", judgment_ids=()), config)
        held = [pair(n, r["prompt"], r["chosen"], r["rejected"], 1.0) for n, r in enumerate(held_out)]
        chosen, rejected = model.score_pairs(held)  # (members, N) each
        return (chosen.mean(0) > rejected.mean(0)).float().mean().item()


def crowd_run(*, crowd: str, rows: list[dict], seed: int, honest_accuracy: float) -> dict:
    """Import ``rows``, let the crowd label them through the queue, and return the labels with both arms' weights."""
    import random

    from django.contrib.auth import get_user_model

    from annotation.demo.simulated_annotators import (
        ADVERSARIAL,
        ALWAYS_LEFT,
        RANDOM_CLICKER,
        honest,
        simulate_labelling,
    )
    from annotation.importers import import_file
    from annotation.models import AnnotatorQuality, Candidate, Comparison, Judgment, Membership, Modality, Project, Role
    from annotation.quality.exclusions import annotator_exclude, training_weights
    from annotation.quality.service import quality_recompute

    users = get_user_model()
    owner, _ = users.objects.get_or_create(username="bench-owner")
    project = Project.objects.create(
        name=f"quality bench {crowd} {seed}",
        modality=Modality.TEXT,
        schema={"arity": 2, "allow_tie": True},
        overlap=3,
        gold_share=0.05,
        created_by=owner,
    )
    bundle = Path(tempfile.mkdtemp()) / "bundle.jsonl"
    with bundle.open("w") as f:
        for n, row in enumerate(rows):
            pid = f"hh-{n:04d}"
            f.write(
                json.dumps(
                    {
                        "id": pid,
                        "text": row["prompt"],
                        "comparisons": "pairs",
                        "candidates": [
                            {"id": f"{pid}-chosen", "text": row["chosen"]},
                            {"id": f"{pid}-rejected", "text": row["rejected"]},
                        ],
                    }
                )
                + "\n"
            )
    import_file(project=project, kind="bundle", path=bundle)
    chosen_of = {}
    names = dict(Candidate.objects.filter(project=project).values_list("pk", "external_id"))
    for comparison in Comparison.objects.filter(project=project):
        chosen_of[comparison.pk] = next(c for c in comparison.candidate_ids if names[c].endswith("-chosen"))
    rng = random.Random(seed)
    gold = rng.sample(sorted(chosen_of), k=len(chosen_of) // 20)
    for pk in gold:
        Comparison.objects.filter(pk=pk).update(is_gold=True, gold_answer={"winner": chosen_of[pk]}, wanted=10)

    bad = {"clean": None, "adversarial": ADVERSARIAL, "always_left": ALWAYS_LEFT, "random": RANDOM_CLICKER}[crowd]
    behaviours = [honest(honest_accuracy)] * 8 + [bad or honest(honest_accuracy)] * 2
    crowd_members = {}
    for i, behaviour in enumerate(behaviours):
        user, _ = users.objects.get_or_create(username=f"bench-{crowd}-{seed}-{i}")
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
        crowd_members[user.pk] = behaviour
    started = time.perf_counter()
    written = simulate_labelling(project=project, annotators=crowd_members, better=chosen_of, seed=seed)
    label_seconds = time.perf_counter() - started

    started = time.perf_counter()
    quality_recompute(project_id=project.pk)
    recompute_seconds = time.perf_counter() - started
    flagged = [q.annotator_id for q in AnnotatorQuality.objects.filter(project=project) if q.flags]
    for annotator_id in flagged:
        annotator_exclude(project=project, annotator_id=annotator_id, actor=owner, reason="flagged (bench)")
    weights = training_weights(project_id=project.pk)["weights"]
    bad_ids = set(list(crowd_members)[8:]) if bad else set()

    texts = dict(Candidate.objects.filter(project=project).values_list("pk", "text"))
    comparisons = {c.pk: c for c in Comparison.objects.filter(project=project).select_related("prompt")}
    labels = []
    for comparison_id, annotator_id, winner in Judgment.objects.filter(
        project=project, comparison__is_gold=False
    ).values_list("comparison_id", "annotator_id", "winner_id"):
        comparison = comparisons[comparison_id]
        loser = next(c for c in comparison.candidate_ids if c != winner)
        ok = winner == chosen_of[comparison_id]
        labels.append((comparison.prompt.text, texts[winner], texts[loser], annotator_id, ok))
    return {
        "labels": labels,
        "weights": weights,
        "judgments": written,
        "label_seconds": label_seconds,
        "recompute_seconds": recompute_seconds,
        "flagged_bad": len(set(flagged) & bad_ids),
        "flagged_honest": len(set(flagged) - bad_ids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--crowds", default=",".join(CROWDS), help="clean first: the drops are against it")
    parser.add_argument("--honest", type=float, default=0.85)
    parser.add_argument(
        "--reward",
        choices=("minilm", "bow", "finetune"),
        default="bow",
        help="frozen MiniLM or bag-of-words features under a linear head, or MiniLM fine-tuned as a round does",
    )
    parser.add_argument("--finetune-steps", type=int, default=0, help="cap --reward finetune's steps (smoke runs)")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench-cache" / "quality-minilm.pt")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    setup_env(args.threads)
    var_dir = Path(tempfile.mkdtemp(prefix="quality-bench-"))
    django_setup(var_dir)

    train_rows, held_out = split(hh_rows())
    print(f"hh-rlhf: {len(train_rows)} rows to annotate, {len(held_out)} held out (split by first human turn)")
    if args.reward == "finetune":
        score = FineTuned(args.finetune_steps)
    else:
        embed = MiniLMFeaturiser(args.cache) if args.reward == "minilm" else Featuriser()

        def score(train, held, seed):
            return train_and_score(embed, train, held, seed)

    truth = [(r["prompt"], r["chosen"], r["rejected"], 1.0) for r in train_rows]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    oracle = [score(truth, held_out, seed) for seed in seeds]
    shorter = statistics.mean(len(r["chosen"]) < len(r["rejected"]) for r in held_out)
    print(
        f"held out: 'the shorter answer' scores {shorter:.3f}; this reward model ({args.reward}) on hh-rlhf's own "
        f"labels (one per pair) {statistics.mean(oracle):.3f}"
    )

    results: dict[str, dict[str, dict[int, float]]] = {}
    for crowd in args.crowds.split(","):
        for seed in seeds:
            run = crowd_run(crowd=crowd, rows=train_rows, seed=seed, honest_accuracy=args.honest)
            uniform = [(p, c, r, 1.0) for p, c, r, _, _ in run["labels"]]
            weighted = [(p, c, r, run["weights"].get(a, 1.0)) for p, c, r, a, _ in run["labels"]]
            arms = {"uniform": score(uniform, held_out, seed)}
            arms["quality"] = score(weighted, held_out, seed)
            right = [ok for *_, ok in run["labels"]]
            kept = sum(w for *_, w in weighted)
            label_accuracy = {
                "uniform": statistics.mean(right),
                "quality": sum(w for (*_, w), ok in zip(weighted, right, strict=True) if ok) / kept,
            }
            for arm, accuracy in arms.items():
                results.setdefault(crowd, {}).setdefault(arm, {})[seed] = accuracy
                results[crowd].setdefault(f"{arm}_labels", {})[seed] = label_accuracy[arm]
            print(
                f"{crowd:12s} seed {seed}: {run['judgments']} judgments "
                f"({run['label_seconds']:.0f} s through the queue, "
                f"label accuracy uniform {label_accuracy['uniform']:.3f} / weighted {label_accuracy['quality']:.3f}), "
                f"recompute {run['recompute_seconds']:.1f} s, "
                f"flagged {run['flagged_bad']} bad / {run['flagged_honest']} honest; "
                f"held-out uniform {arms['uniform']:.3f}, quality {arms['quality']:.3f}",
                flush=True,
            )

    def fmt(values: list[float], spec: str = ".3f") -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{format(statistics.mean(values), spec)} ± {sd:.3f}"

    clean = results.get("clean", {}).get("uniform")
    print(f"\nheld-out accuracy (label accuracy) per crowd, mean ± sd over seeds; reward model: {args.reward}")
    print("crowd        | uniform                          | quality (weights + flagged excluded)")
    for crowd, arms in results.items():
        print(
            f"{crowd:12s} | {fmt(list(arms['uniform'].values()))} ({fmt(list(arms['uniform_labels'].values()))}) "
            f"| {fmt(list(arms['quality'].values()))} ({fmt(list(arms['quality_labels'].values()))})"
        )
    if clean:
        # Paired by seed: the same held-out pairs and training seed, the clean crowd's uniform arm as the reference.
        print("\ndrop against the clean crowd (clean uniform − arm, in points, paired by seed), mean ± sd")
        for crowd, arms in results.items():
            if crowd == "clean":
                continue
            drops = {arm: [100 * (clean[s] - arms[arm][s]) for s in arms[arm] if s in clean] for arm in arms}
            print(f"{crowd:12s} | uniform {fmt(drops['uniform'], '+.1f')} | quality {fmt(drops['quality'], '+.1f')}")


if __name__ == "__main__":
    main()
