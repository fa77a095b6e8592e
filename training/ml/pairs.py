"""Preference pairs from annotators' judgments: one pure function with documented rules.

Django code turns ``Judgment`` rows into :class:`JudgmentRecord` values (plain data) and calls
:func:`build_preference_pairs`; everything downstream (reward training, evaluation, export) consumes the
:class:`PairSet` it returns. The function reads no clock, no database and no global random state, so the same
judgments and options always give the same pairs, the same split and the same snapshot id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from preference.expansion import ExpansionError, ordered_pairs

TiePolicy = Literal["drop", "soft"]
Split = Literal["train", "eval"]


@dataclass(frozen=True)
class JudgmentRecord:
    """One annotator's answer on one comparison, as plain data.

    Exactly one of ``winner``, ``ranking`` or ``tie=True`` carries the answer.
    """

    judgment_id: Hashable
    """Primary key of the judgment; recorded on every pair it produces and hashed into the snapshot id."""
    comparison_id: Hashable
    """The comparison judged; several judgments on one comparison give the agreement level."""
    prompt_id: Hashable
    """The prompt; all its pairs land on one side of the train/eval split (with every prompt that opens the same
    way, :func:`conversation_opening`)."""
    prompt_text: str
    """The prompt (or rendered chat context) the candidates answer."""
    candidates: Mapping[Hashable, str]
    """Candidate id → candidate text, for every candidate shown in the comparison (2..K)."""
    winner: Hashable | None = None
    """The preferred candidate (pairwise, or best-of-K without a full ranking)."""
    tie: bool = False
    """True when the annotator said the candidates are equally good."""
    ranking: Sequence[Hashable] | None = None
    """Full ranking of the candidate ids, best first (K-way comparisons)."""
    strength: float | None = None
    """How much better the winner is, on the project's 0..max scale (annotation.schema); a signed value from
    elsewhere (HelpSteer2-Preference's −3..3) counts by its size, the winner being the direction."""
    is_gold: bool = False
    """True for a gold (quality-control) comparison: never trained on by default."""
    annotator_id: Hashable | None = None
    """Who answered; keys ``annotator_weights``."""
    split: Split | None = None
    """The prompt's explicit split when the project set one; None lets the builder hash the prompt's opening."""
    shown_order: Sequence[Hashable] | None = None
    """The candidate ids in the order the annotator saw them (left to right), when recorded: for the position-only
    baseline of an evaluation."""


@dataclass(frozen=True)
class PreferencePair:
    """One (chosen, rejected) observation for a Bradley–Terry model."""

    prompt_id: Hashable
    prompt: str
    chosen_id: Hashable
    chosen: str
    rejected_id: Hashable
    rejected: str
    label: float
    """Probability that ``chosen`` beats ``rejected``: 1.0 for a preference, 0.5 for a tie (soft label)."""
    margin: float
    """Margin m in −log σ(r_c − r_r − m): |strength| × margin_scale, 0 when unknown, for ties and rankings."""
    weight: float
    """Per-pair loss weight (the annotator's weight)."""
    judgment_ids: tuple[Hashable, ...]
    """The judgment(s) this pair came from."""
    comparison_id: Hashable
    annotator_id: Hashable | None
    agreement: float | None
    """Share of the comparison's votes on this candidate pair that agree with this pair's direction (ties count
    half each way); None when the candidate pair was judged only once."""
    chosen_shown_first: bool | None = None
    """Whether the annotator saw ``chosen`` left of ``rejected``; None when the shown order was not recorded."""


@dataclass(frozen=True)
class PairSet:
    """Train and eval pairs plus what is needed to trace a checkpoint back to its labels."""

    train: tuple[PreferencePair, ...]
    eval: tuple[PreferencePair, ...]
    snapshot_id: str
    """``"ps-"`` + 16 hex digits of SHA-256 over the sorted ids in ``judgment_ids``."""
    judgment_ids: tuple[str, ...]
    """Sorted ids (as strings) of every judgment the builder used: all inputs except excluded gold."""
    train_judgment_ids: tuple[str, ...] = ()
    """Sorted ids (as strings) of the judgments with a pair in ``train``: what a model trained on this set learnt
    from."""
    eval_judgment_ids: tuple[str, ...] = ()
    """Sorted ids (as strings) of the judgments with a pair in ``eval``: what it was evaluated on."""
    options: dict = field(default_factory=dict)
    """The builder's options, to be saved beside the checkpoint together with the snapshot id."""
    stats: dict = field(default_factory=dict)
    """Counts: judgments in, gold excluded, ties dropped, pairs per split, prompts per split."""
    prompt_splits: Mapping[Hashable, Split] = field(default_factory=dict)
    """The side of every prompt of a used judgment (also those whose pairs were all dropped), so that other data
    from the same judgments (span marks) can be split exactly like the pairs."""


def snapshot_id_for(judgment_ids: Iterable[Hashable]) -> str:
    """Stable id of a set of judgments: independent of order and of int/str spelling of the ids."""
    ids = sorted({str(j) for j in judgment_ids})
    digest = hashlib.sha256(json.dumps(ids, separators=(",", ":")).encode()).hexdigest()
    return f"ps-{digest[:16]}"


_TURN = re.compile(r"(?:^|\n)[ \t]*(human|user|assistant|system)[ \t]*:", re.IGNORECASE)
"""A turn marker at the start of a line: hh-rlhf's ``Human:`` / ``Assistant:`` and ``render_prompt``'s ``user:``."""


def conversation_opening(prompt_text: str) -> str:
    """The first human turn of a prompt, whitespace collapsed and case folded: what the split groups by.

    Dialogues that open the same way are near-duplicates (in hh-rlhf many rows share their first human turn), so
    they must never straddle train and eval. A prompt without turn markers is one
    turn: all of it.

    >>> conversation_opening("\\n\\nHuman: How do I  bake BREAD?\\n\\nAssistant: Flour.\\n\\nHuman: And?")
    'how do i bake bread?'
    >>> conversation_opening("system: be brief\\nuser: Hi there\\nassistant: hello\\nuser: bye")
    'hi there'
    """
    markers = list(_TURN.finditer(prompt_text))
    human = next((i for i, m in enumerate(markers) if m.group(1).lower() in ("human", "user")), None)
    if human is not None:
        end = markers[human + 1].start() if human + 1 < len(markers) else len(prompt_text)
        prompt_text = prompt_text[markers[human].end() : end]
    elif markers:
        prompt_text = prompt_text[: markers[0].start()]
    return " ".join(prompt_text.split()).casefold()


def prompt_split(key: Hashable, *, eval_fraction: float, seed: int = 0) -> Split:
    """Deterministic split of a prompt group by hashing its key (same answer on every machine and every run).

    Python's ``hash()`` is salted per process, so SHA-256 it is.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return "eval" if u < eval_fraction else "train"


def build_preference_pairs(
    judgments: Iterable[JudgmentRecord],
    *,
    tie_policy: TiePolicy = "drop",
    use_strength_margin: bool = True,
    margin_scale: float = 1.0,
    exclude_gold: bool = True,
    eval_fraction: float = 0.1,
    seed: int = 0,
    annotator_weights: Mapping[Hashable, float] | None = None,
) -> PairSet:
    """Expand judgments into Bradley–Terry pairs and split them by prompt.

    Rules, in order:

    1. **Gold** judgments are skipped when ``exclude_gold`` (quality-control items must not leak into training, and
       their answers are the researcher's, not the crowd's).
    2. **Pairwise winner** → one pair (winner, other). A winner picked among K > 2 candidates without a ranking
       ("best of K") → K−1 pairs (winner, each other): that is all the judgment says.
    3. **K-way ranking** (best first) → all K(K−1)/2 ordered pairs (higher-ranked, lower-ranked). Under
       Bradley–Terry each ordered pair is an observation, and using all of them is the full pairwise likelihood of
       the ranking, as InstructGPT does (Ouyang et al. 2022, §3.5: "K choose 2" comparisons per prompt). Adjacent
       pairs only (K−1, the Plackett–Luce-flavoured choice) would throw away the transitive information the
       annotator gave. Each pair has weight 1; the pairs of one ranking share a prompt, so the split keeps them
       together and they never straddle train and eval.
    4. **Tie** → dropped (``tie_policy="drop"``) or kept as a soft pair with label 0.5 and margin 0
       (``tie_policy="soft"``; the loss is then binary cross-entropy against 0.5, which pulls the two rewards
       together). A tie on K candidates ties every pair of them.
    5. **Strength** → margin m = |strength| × ``margin_scale`` on pairwise / best-of-K pairs when
       ``use_strength_margin`` (Llama 2's margin loss, Touvron et al. 2023, §3.2.2). Any sign is ignored: the winner
       already says which way. Rankings and ties get margin 0: strength is a pairwise notion on the schema.
    6. **Annotator weights**: ``annotator_weights[annotator_id]`` multiplies the pair's loss weight (missing → 1.0).
       Pairs whose weight is 0 are dropped. This is the hook the quality-control work fills.
    7. **Split by conversation opening**: a prompt's explicit ``split`` is honoured; otherwise the prompt's
       :func:`conversation_opening` (its id when the opening is empty) is hashed with ``seed`` and goes to eval with
       probability ``eval_fraction``. Every pair of a prompt, and of every prompt that opens the same way, lands on
       the same side.
    8. **Agreement**: when one candidate pair was judged several times on a comparison, each pair records the
       share of votes agreeing with its direction (ties half each way), for accuracy by agreement level.

    Each judgment gives its own pairs (several annotators on one comparison are several observations). The
    snapshot id hashes the sorted ids of the judgments used (all but excluded gold), so a checkpoint can be traced
    to exactly the labels it saw.

    Example (``eval_fraction=0``)::

        >>> j = JudgmentRecord(judgment_id=7, comparison_id=1, prompt_id=3, prompt_text="Say hi",
        ...                    candidates={10: "hi", 11: "go away"}, winner=10, strength=-2, annotator_id="ann")
        >>> r = JudgmentRecord(judgment_id=8, comparison_id=2, prompt_id=4, prompt_text="Count",
        ...                    candidates={20: "1 2 3", 21: "1 2", 22: "3"}, ranking=[20, 21, 22])
        >>> ps = build_preference_pairs([j, r], eval_fraction=0)
        >>> [(p.chosen_id, p.rejected_id, p.margin, p.judgment_ids) for p in ps.train]
        [(10, 11, 2.0, (7,)), (20, 21, 0.0, (8,)), (20, 22, 0.0, (8,)), (21, 22, 0.0, (8,))]
        >>> ps.snapshot_id == snapshot_id_for(["7", "8"])
        True
    """
    if tie_policy not in ("drop", "soft"):
        raise ValueError(f"tie_policy must be 'drop' or 'soft', got {tie_policy!r}")
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must be within [0, 1], got {eval_fraction!r}")
    weights = annotator_weights or {}

    used: list[JudgmentRecord] = []
    stats: Counter[str] = Counter()
    for judgment in judgments:
        stats["judgments_in"] += 1
        if judgment.is_gold and exclude_gold:
            stats["gold_excluded"] += 1
            continue
        used.append(judgment)

    # Decide each prompt's side once: an explicit split wins (and must agree across the prompt's judgments),
    # otherwise the hashed one.
    sides: dict[Hashable, Split] = {}
    for judgment in used:
        if judgment.split is None:
            continue
        if judgment.split not in ("train", "eval"):
            raise ValueError(f"judgment {judgment.judgment_id}: split must be 'train', 'eval' or None")
        previous = sides.setdefault(judgment.prompt_id, judgment.split)
        if previous != judgment.split:
            raise ValueError(f"prompt {judgment.prompt_id} is marked both {previous!r} and {judgment.split!r}")
    for judgment in used:
        if judgment.prompt_id not in sides:
            key = conversation_opening(judgment.prompt_text) or judgment.prompt_id
            sides[judgment.prompt_id] = prompt_split(key, eval_fraction=eval_fraction, seed=seed)

    # Ordered (better, worse, label, margin) tuples per judgment; `votes` counts each direction for agreement.
    expanded: list[tuple[JudgmentRecord, list[tuple[Hashable, Hashable, float, float]]]] = []
    votes: defaultdict[tuple[Hashable, frozenset], Counter] = defaultdict(Counter)
    for judgment in used:
        ordered = _ordered_pairs(judgment, use_strength_margin=use_strength_margin, margin_scale=margin_scale)
        expanded.append((judgment, ordered))
        for better, worse, label, _ in ordered:
            key = (judgment.comparison_id, frozenset((better, worse)))
            votes[key][better] += label
            votes[key][worse] += 1.0 - label

    train: list[PreferencePair] = []
    held_out: list[PreferencePair] = []
    for judgment, ordered in expanded:
        weight = float(weights.get(judgment.annotator_id, 1.0))
        for better, worse, label, margin in ordered:
            if label == 0.5 and tie_policy == "drop":
                stats["tie_pairs_dropped"] += 1
                continue
            if weight <= 0.0:
                stats["zero_weight_pairs_dropped"] += 1
                continue
            tally = votes[(judgment.comparison_id, frozenset((better, worse)))]
            total = tally[better] + tally[worse]
            pair = PreferencePair(
                prompt_id=judgment.prompt_id,
                prompt=judgment.prompt_text,
                chosen_id=better,
                chosen=judgment.candidates[better],
                rejected_id=worse,
                rejected=judgment.candidates[worse],
                label=label,
                margin=margin,
                weight=weight,
                judgment_ids=(judgment.judgment_id,),
                comparison_id=judgment.comparison_id,
                annotator_id=judgment.annotator_id,
                agreement=tally[better] / total if total > 1.0 else None,
                chosen_shown_first=_shown_first(judgment.shown_order, better, worse),
            )
            (held_out if sides[judgment.prompt_id] == "eval" else train).append(pair)

    stats["train_pairs"] = len(train)
    stats["eval_pairs"] = len(held_out)
    stats["train_prompts"] = len({p.prompt_id for p in train})
    stats["eval_prompts"] = len({p.prompt_id for p in held_out})
    judgment_ids = tuple(sorted({str(j.judgment_id) for j in used}))
    return PairSet(
        train=tuple(train),
        eval=tuple(held_out),
        snapshot_id=snapshot_id_for(judgment_ids),
        judgment_ids=judgment_ids,
        train_judgment_ids=_judgment_ids_of(train),
        eval_judgment_ids=_judgment_ids_of(held_out),
        options={
            "tie_policy": tie_policy,
            "use_strength_margin": use_strength_margin,
            "margin_scale": margin_scale,
            "exclude_gold": exclude_gold,
            "eval_fraction": eval_fraction,
            "seed": seed,
            "annotator_weights": annotator_weights is not None,
        },
        stats=dict(stats),
        prompt_splits=dict(sides),
    )


def _judgment_ids_of(pairs: Iterable[PreferencePair]) -> tuple[str, ...]:
    return tuple(sorted({str(j) for pair in pairs for j in pair.judgment_ids}))


def _shown_first(shown_order: Sequence[Hashable] | None, chosen: Hashable, rejected: Hashable) -> bool | None:
    order = list(shown_order or ())
    if chosen not in order or rejected not in order:
        return None
    return order.index(chosen) < order.index(rejected)


def _ordered_pairs(
    judgment: JudgmentRecord, *, use_strength_margin: bool, margin_scale: float
) -> list[tuple[Hashable, Hashable, float, float]]:
    """(better, worse, label, margin) for one judgment: the shared rules of ``preference.expansion``."""
    try:
        return ordered_pairs(
            list(judgment.candidates),
            winner=judgment.winner,
            tie=judgment.tie,
            ranking=judgment.ranking,
            strength=judgment.strength,
            use_strength_margin=use_strength_margin,
            margin_scale=margin_scale,
        )
    except ExpansionError as exc:
        raise ValueError(f"judgment {judgment.judgment_id}: {exc}") from exc
