"""Build the demo project's data files from the Fine-Grained RLHF QA feedback set.

    python annotation/demo/build_demo_data.py [path/to/dev_feedback.public.jsonl]

Reads the first ``QUESTIONS`` questions of the source file (in file order) and writes,
beside this script:

- ``fgrlhf_qa_bundle.jsonl``: a Tandem bundle import (see annotation.importers):
  one row per question; the question is the prompt, its retrieved passages a system
  turn of the context, the four model answers ("prediction 1".."prediction 4") the
  candidates, and all six pairs of them the comparisons. The last ``EVAL_QUESTIONS``
  questions form the eval split.
- ``fgrlhf_qa_reference.jsonl``: what the original annotators said about the same
  items, kept apart so that it is never shown to Tandem's annotators (no anchoring):
  their six pairwise preferences, their error spans over prediction 1 (code-point
  offsets, end exclusive, categories as in the demo schema) and their corrected answer.
  Useful to compare Tandem's labels with the originals or to drive simulated annotators.

Deterministic: the same source gives byte-identical files.
"""

import argparse
import json
from itertools import combinations
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "fgrlhf_qa_feedback" / "dev_feedback.public.jsonl"
QUESTIONS = 60
EVAL_QUESTIONS = 10
PREDICTIONS = 4
# The source's error types → the demo schema's span category keys.
CATEGORIES = {
    "Irrelevant": "irrelevant",
    "Wrong-Grounding": "wrong-grounding",
    "Unverifiable": "unverifiable",
    "Redundant": "redundant",
    "Incoherent": "incoherent",
}


def passages_text(passages: list[list[str]]) -> str:
    """Each passage is [title, sentence 1, sentence 2, ...]; sentences are numbered from
    1 as the source's error explanations number them."""
    blocks = []
    for number, (title, *sentences) in enumerate(passages, 1):
        lines = [f"Passage {number}: {title}"]
        lines += [f"({i}) {sentence.strip()}" for i, sentence in enumerate(sentences, 1)]
        blocks.append("\n".join(lines))
    return "Passages the answers should be grounded in:\n\n" + "\n\n".join(blocks)


def bundle_row(index: int, item: dict, split: str) -> dict:
    prompt_id = f"fgrlhf-qa-{index:03d}"
    context = [{"role": "system", "content": passages_text(item["passages"])}] if item["passages"] else []
    return {
        "id": prompt_id,
        "text": item["question"],
        "context": context,
        "split": split,
        "metadata": {"source": "FineGrainedRLHF qa_feedback dev", "license": "Apache-2.0", "source_row": index},
        "candidates": [
            {"id": f"{prompt_id}-p{k}", "text": item[f"prediction {k}"], "metadata": {"prediction": k}}
            for k in range(1, PREDICTIONS + 1)
        ],
        "comparisons": "pairs",
    }


def reference_row(index: int, item: dict) -> dict:
    prompt_id = f"fgrlhf-qa-{index:03d}"
    candidate = [f"{prompt_id}-p{k}" for k in range(1, PREDICTIONS + 1)]
    preferences = []
    # The source lists its six preferences in the order 1v2, 1v3, 1v4, 2v3, 2v4, 3v4.
    for (a, b), said in zip(combinations(candidate, 2), item["preference"], strict=True):
        winner = {1: a, 2: b}.get(said)
        preferences.append({"candidate_ids": [a, b], "winner": winner, "tie": said == 0})
    spans = [
        {"candidate_id": candidate[0], "start": e["start"], "end": e["end"], "category": CATEGORIES[e["error type"]]}
        for e in item["feedback"]["errors"]
    ]
    return {
        "prompt_id": prompt_id,
        "preferences": preferences,
        "spans": spans,
        "corrected_prediction_1": item["feedback"]["corrected-prediction"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    items = []
    with args.source.open() as f:
        for line in f:
            if line.strip():
                items.append(json.loads(line))
            if len(items) == QUESTIONS:
                break
    with (HERE / "fgrlhf_qa_bundle.jsonl").open("w") as bundle, (HERE / "fgrlhf_qa_reference.jsonl").open("w") as ref:
        for index, item in enumerate(items, 1):
            split = "eval" if index > QUESTIONS - EVAL_QUESTIONS else "train"
            bundle.write(json.dumps(bundle_row(index, item, split), ensure_ascii=False) + "\n")
            ref.write(json.dumps(reference_row(index, item), ensure_ascii=False) + "\n")
    print(f"Wrote {len(items)} questions to {HERE}")


if __name__ == "__main__":
    main()
