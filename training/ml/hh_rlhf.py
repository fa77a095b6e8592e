"""Anthropic's public hh-rlhf pairs (``training/data/hh-rlhf``, MIT) as a :class:`~training.ml.pairs.PairSet`."""

from __future__ import annotations

import json
from pathlib import Path

from .pairs import JudgmentRecord, PairSet, build_preference_pairs, conversation_opening

HH_PROMPT_TEMPLATE = "\n\nHuman: {prompt}\n\nAssistant:"
"""How a single-turn prompt reads in hh-rlhf's format (a model trained on it expects it)."""


def hh_rlhf_pairs(path: str | Path, *, eval_fraction: float, seed: int) -> PairSet:
    """hh-rlhf rows → a PairSet through our pair builder (which splits by the dialogue's first human turn,
    :func:`~training.ml.pairs.conversation_opening`, so near-duplicate dialogues never straddle the split).

    A row is two whole dialogues that share everything up to the last ``Assistant:`` turn. The shared part is the
    prompt, the two last turns are the candidates; with ``separator=""`` prompt + response is the original text.
    """
    records = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        row = json.loads(line)
        chosen, rejected = row["chosen"], row["rejected"]
        cut_c, cut_r = chosen.rfind("\n\nAssistant:") + 12, rejected.rfind("\n\nAssistant:") + 12
        if cut_c >= 12 and chosen[:cut_c] == rejected[:cut_r]:
            prompt, chosen, rejected = chosen[:cut_c], chosen[cut_c:], rejected[cut_r:]
        else:
            prompt = ""
        if chosen == rejected:
            continue  # nothing to learn from an identical pair
        records.append(
            JudgmentRecord(
                judgment_id=i,
                comparison_id=i,
                # The row's opening, so that the few rows without a shared prompt still group with their kin.
                prompt_id=conversation_opening(row["chosen"]),
                prompt_text=prompt,
                candidates={"chosen": chosen, "rejected": rejected},
                winner="chosen",
            )
        )
    return build_preference_pairs(records, eval_fraction=eval_fraction, seed=seed)
