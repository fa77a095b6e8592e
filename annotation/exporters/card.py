"""The dataset card (``README.md``) every export carries, and the running counts it is built from.

Counts are kept as the rows go out (bounded memory: distinct prompts are bits in a bitmap indexed by the prompt's
id, annotators and sources are few), so the card describes exactly the data beside it. Its numbers are also
written as one JSON block (``## Numbers``) that scripts, and the tests, can read back.

A parallel export counts each range of comparisons apart and :meth:`CardStats.merge` adds the ranges up in
comparison order: every count is one a merge reproduces exactly (no float sums whose rounding depends on
where the ranges were cut; the ``sources`` limit decided at each source's first comparison, as one pass would).
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa

from .shapes import JSON_TEXT_COLUMNS, ShapeOptions
from .source import ComparisonGroup

SOURCE_KEYS_LIMIT = 50  # distinct source/licence entries listed; the rest are counted as "other"
_POSITIONS = {i: str(i + 1) for i in range(64)}  # winner position labels, made once instead of per judgment
_MAGNITUDES = {s: str(abs(s)) for s in range(-16, 17)}  # strength labels, likewise


class _Bitmap:
    """A set of non-negative ints as bits: 1M prompt ids cost 125 KB instead of ~60 MB as a Python set."""

    def __init__(self):
        self.bits = bytearray()
        self.count = 0

    def __contains__(self, n: int) -> bool:
        byte, bit = divmod(n, 8)
        return byte < len(self.bits) and bool(self.bits[byte] >> bit & 1)

    def add(self, n: int) -> None:
        byte, bit = n >> 3, 1 << (n & 7)
        bits = self.bits
        if byte >= len(bits):
            bits.extend(bytes(byte - len(bits) + 1024))
        if not bits[byte] & bit:
            bits[byte] |= bit
            self.count += 1

    def update(self, other: _Bitmap) -> None:
        size = max(len(self.bits), len(other.bits))
        union = int.from_bytes(self.bits, "little") | int.from_bytes(other.bits, "little")
        self.bits = bytearray(union.to_bytes(size, "little"))
        self.count = union.bit_count()


class CardStats:
    """The card's counts. ``all_sources``: count every source, not the first ``SOURCE_KEYS_LIMIT`` — a range's
    partial counts, which :meth:`merge` limits the way one pass over all the comparisons would (a range of a
    few thousand judgments holds few sources)."""

    def __init__(self, *, all_sources: bool = False):
        self.all_sources = all_sources
        self.rows = 0
        self.judgments = 0
        self.comparisons = 0
        self._prompts = _Bitmap()
        self.annotators: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.winner_position: Counter[str] = Counter()
        self.strength: Counter[str] = Counter()
        self.splits: Counter[str] = Counter()
        self.gold_judgments = 0
        # Each agreement value with its number of comparisons (a few distinct values): the mean is summed from
        # these in sorted order, so it is the same float however the comparisons were split into ranges.
        self.agreements: Counter[float] = Counter()
        self.sources: Counter[tuple] = Counter()
        self.candidate_sources: Counter[str] = Counter()
        self.pair_labels: Counter[str] = Counter()
        # (annotator, split, winner's position or None, tie, strength) → judgments, until _settle.
        self._combined: Counter[tuple] = Counter()

    def add_group(self, group: ComparisonGroup) -> None:
        self.comparisons += 1
        first = group.judgments[0]
        self._prompts.add(first.prompt_id)
        metadata = first.prompt_metadata if isinstance(first.prompt_metadata, dict) else {}
        source = (str(metadata.get("source") or "—"), str(metadata.get("license") or "—"))
        if source in self.sources:
            self.sources[source] += 1
        else:
            self._count_source(source, 1)
        candidate_sources = self.candidate_sources
        for candidate in first.candidates.values():
            version = (candidate.origin or {}).get("model_version")
            if version:
                candidate_sources[f"{candidate.source} (model version {version})"] += 1
            else:
                candidate_sources[candidate.source] += 1
        agreement = group.agreement
        if agreement is not None:
            self.agreements[agreement] += 1
        # Per judgment, one count of what the card tells apart (this loop runs once per exported judgment);
        # :meth:`_settle` spreads them over the card's counters.
        combined = self._combined
        for j in group.judgments:
            winner = j.winner_id
            key = (j.annotator, j.split, None if winner is None else j.candidate_ids.index(winner), j.tie, j.strength)
            combined[key] += 1
        self.judgments += len(group.judgments)
        if first.is_gold:  # gold is a comparison's flag, the same for all its judgments
            self.gold_judgments += len(group.judgments)

    def _settle(self) -> None:
        """Spread the per-judgment combined counts over annotators, splits, answers, positions and strengths."""
        annotators, splits, answers, positions, strength = (
            self.annotators,
            self.splits,
            self.answers,
            self.winner_position,
            self.strength,
        )
        for (annotator, split, position, tie, magnitude), n in self._combined.items():
            annotators[annotator] += n
            splits[split] += n
            if position is not None:
                answers["winner"] += n
                positions[_POSITIONS.get(position) or str(position + 1)] += n
            elif tie:
                answers["tie"] += n
            else:
                answers["ranking"] += n
            strength["none" if magnitude is None else _MAGNITUDES.get(magnitude) or str(abs(magnitude))] += n
        self._combined.clear()

    def _count_source(self, key: tuple[str, str], comparisons: int) -> None:
        # The first SOURCE_KEYS_LIMIT sources, in comparison order, are listed; later ones count as "other".
        if key in self.sources or self.all_sources or len(self.sources) < SOURCE_KEYS_LIMIT:
            self.sources[key] += comparisons
        else:
            self.sources[("other", "—")] += comparisons

    def merge(self, later: CardStats) -> None:
        """Add the counts of the comparisons that come after these (a parallel export's next range)."""
        self._settle()
        later._settle()
        self.rows += later.rows
        self.judgments += later.judgments
        self.comparisons += later.comparisons
        self.gold_judgments += later.gold_judgments
        self._prompts.update(later._prompts)
        for mine, theirs in (
            (self.annotators, later.annotators),
            (self.answers, later.answers),
            (self.winner_position, later.winner_position),
            (self.strength, later.strength),
            (self.splits, later.splits),
            (self.agreements, later.agreements),
            (self.candidate_sources, later.candidate_sources),
            (self.pair_labels, later.pair_labels),
        ):
            mine.update(theirs)
        for key, comparisons in later.sources.items():  # in the order the range first met them
            self._count_source(key, comparisons)

    def add_rows(self, rows: list[dict]) -> None:
        self.rows += len(rows)
        for row in rows:
            if "label" in row:
                self.pair_labels["tie (0.5)" if row["label"] == 0.5 else "preferred (1.0)"] += 1

    def numbers(self) -> dict:
        self._settle()
        with_agreement = sum(self.agreements.values())
        histogram: Counter[str] = Counter()
        for agreement, comparisons in self.agreements.items():
            histogram[f"{min(int(agreement * 10), 9) / 10:.1f}"] += comparisons
        agreement_sum = sum(agreement * comparisons for agreement, comparisons in sorted(self.agreements.items()))
        return {
            "rows": self.rows,
            "judgments": self.judgments,
            "comparisons": self.comparisons,
            "prompts": self._prompts.count,
            "annotators": len(self.annotators),
            "judgments_per_annotator": dict(sorted(self.annotators.items())),
            "gold_judgments": self.gold_judgments,
            "splits": dict(sorted(self.splits.items())),
            "answers": dict(sorted(self.answers.items())),
            "winner_position": dict(sorted(self.winner_position.items())),
            "strength": dict(sorted(self.strength.items())),
            "pair_labels": dict(sorted(self.pair_labels.items())),
            "agreement": {
                "comparisons_with_agreement": with_agreement,
                "mean": round(agreement_sum / with_agreement, 6) if with_agreement else None,
                "histogram": dict(sorted(histogram.items())),
            },
            "sources": [{"source": s, "license": lic, "comparisons": n} for (s, lic), n in self.sources.most_common()],
            "candidate_sources": dict(sorted(self.candidate_sources.items())),
        }


def card_markdown(
    *,
    project,
    shape: str,
    file_format: str,
    filters: dict,
    options: ShapeOptions,
    media: str,
    schema: pa.Schema,
    stats: CardStats,
    created_at: str,
    label_quality: dict | None = None,
) -> str:
    numbers = stats.numbers()
    licenses = sorted({s["license"] for s in numbers["sources"] if s["license"] != "—"})
    front = ["---", f"pretty_name: {json.dumps(f'{project.name} ({shape})')}"]
    if len(licenses) == 1:
        # The Hugging Face Hub's licence ids are SPDX ids in lower case ("apache-2.0", "cc-by-4.0").
        front.append(f"license: {json.dumps(licenses[0].lower())}")
    elif len(licenses) > 1:
        front.append("license: other")  # several: the table under "Sources and licences" names each
    front += ["tags:", "  - human-feedback", "  - preference", f"  - {shape}", "---", ""]
    schema_rows = "\n".join(f"| `{f.name}` | `{f.type}` |" for f in schema)
    agreement = numbers["agreement"]
    sources = (
        "\n".join(f"| {s['source']} | {s['license']} | {s['comparisons']} |" for s in numbers["sources"])
        or "| — | — | 0 |"
    )
    return "\n".join(
        [
            *front,
            f"# {project.name}: {shape}",
            "",
            f"Exported from Tandem project {project.pk} on {created_at} as `{file_format}`: "
            f"{numbers['rows']} rows from {numbers['judgments']} judgments on {numbers['comparisons']} comparisons "
            f"({numbers['prompts']} prompts, {numbers['annotators']} annotators).",
            "",
            "## Shape",
            "",
            _SHAPE_TEXT[shape].format(options=options, ties=_TIES_TEXT[options.ties]),
            "",
            "## Schema",
            "",
            "| column | type |",
            "| --- | --- |",
            schema_rows,
            "",
            _json_columns_text(schema)
            + "In CSV every list or object is JSON text and an empty cell is a missing value. Media are "
            + ("packed under `media/`, referenced by relative path." if media == "pack" else "referenced by URL."),
            "",
            "## Label distribution",
            "",
            f"- answers: {_counts(numbers['answers'])}",
            f"- winner's position in stored order (1 = first): {_counts(numbers['winner_position'])}",
            f"- strength (magnitude): {_counts(numbers['strength'])}",
            f"- splits (judgments): {_counts(numbers['splits'])}",
            *([f"- pair labels: {_counts(numbers['pair_labels'])}"] if numbers["pair_labels"] else []),
            "",
            "## Agreement",
            "",
            f"{agreement['comparisons_with_agreement']} comparisons were judged more than once; mean agreement "
            f"{agreement['mean'] if agreement['mean'] is not None else '—'} (the share of pair votes siding with "
            f"each candidate pair's majority; ties count half each way). By tenth: {_counts(agreement['histogram'])}.",
            "",
            *_label_quality_lines(label_quality),
            "## Sources and licences",
            "",
            "| source | licence | comparisons |",
            "| --- | --- | --- |",
            sources,
            "",
            f"Candidates: {_counts(numbers['candidate_sources'])}.",
            "",
            "## Filter",
            "",
            "```json",
            json.dumps({"filters": filters, "options": options.__dict__, "media": media}, indent=2),
            "```",
            "",
            "## Numbers",
            "",
            "```json",
            json.dumps(numbers, indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    )


def card_numbers(markdown: str) -> dict:
    """The ``## Numbers`` JSON block of a card (for scripts and tests)."""
    block = markdown.split("## Numbers", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def _label_quality_lines(quality: dict | None) -> list[str]:
    """The project's inter-annotator statistics (annotation.quality), over all its judgments as last computed —
    not only the exported ones."""
    if quality is None:
        return ["Inter-annotator statistics have not been computed for this project yet.", ""]
    choice, strength = quality.get("choice") or {}, quality.get("strength") or {}
    lines = [
        f"Over the project's {quality['judgments']} judgments as of {quality['computed_at']} "
        f"({choice.get('pairable_units', 0)} comparisons judged more than once):",
        "",
        f"- choices (ties a category of their own): Krippendorff's alpha (nominal) "
        f"{_or_dash(choice.get('krippendorff_alpha'))}, Fleiss' kappa {_or_dash(choice.get('fleiss_kappa'))}",
    ]
    if strength:
        lines.append(
            f"- strength: Krippendorff's alpha ordinal {_or_dash(strength.get('krippendorff_alpha_ordinal'))}, "
            f"interval {_or_dash(strength.get('krippendorff_alpha_interval'))}"
        )
    for key, figures in (quality.get("criteria") or {}).items():
        lines.append(
            f"- rating `{key}`: Krippendorff's alpha ordinal {_or_dash(figures.get('krippendorff_alpha_ordinal'))}, "
            f"interval {_or_dash(figures.get('krippendorff_alpha_interval'))}"
        )
    for category, figures in (quality.get("spans") or {}).items():
        lines.append(
            f"- spans `{category}`: overlap F1 {_or_dash(figures.get('overlap_f1'))} "
            f"over {figures.get('annotator_pairs', 0)} annotator pairs"
        )
    return [*lines, "", "```json", json.dumps({"label_quality": quality}, indent=2), "```", ""]


def _or_dash(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _json_columns_text(schema: pa.Schema) -> str:
    """Which of this file's columns hold JSON text in every format (only those it has)."""
    names = [f"`{f.name}`" for f in schema if f.name in JSON_TEXT_COLUMNS]
    candidates = schema.field("candidates").type if "candidates" in schema.names else None
    if candidates is not None and pa.types.is_list(candidates) and pa.types.is_struct(candidates.value_type):
        if candidates.value_type.get_field_index("origin") >= 0:
            names.append("candidates' `origin`")
    if not names:
        return ""
    verb = "is" if len(names) == 1 else "are"
    return f"{' and '.join(names)} {verb} JSON text. "


def _counts(counter: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counter.items()) or "—"


_TIES_TEXT = {
    "drop": "Ties are dropped (they give no pair).",
    "soft": "Ties are kept as soft labels: one pair per tied candidate pair, with `label` 0.5.",
}
_SHAPE_TEXT = {
    "pairs": (
        "TRL preference pairs (`prompt`, `chosen`, `rejected`) in the {options.form} form, with `margin` = "
        "|strength| × {options.margin_scale}. Expansion: a winner among K candidates gives K−1 pairs, a K-way "
        "ranking all K(K−1)/2 ordered pairs. {ties} These are the rules reward training uses "
        "(`preference.expansion`). Load with "
        "`datasets.load_dataset` / `load_from_disk` and hand to TRL's `DPOTrainer` or `RewardTrainer`."
    ),
    "rankings": (
        "One row per judgment: `responses` best first with `ranks` (1 = best; candidates the answer does not "
        "order share a rank). Pair expansion: every two responses with different ranks give (better, worse); "
        "equal ranks are a tie (dropped or a soft 0.5 pair) — the same policy as the `pairs` shape."
    ),
    "judgments": (
        "The raw record: one row per annotator's judgment with candidates (round, model version), winner / tie "
        "/ ranking, strength, ratings, spans, rationale, shown order and time spent. Tandem imports it back "
        "(kind `judgments`)."
    ),
    "consensus": (
        "One row per comparison: each candidate's score (share of pair votes won, ties half), the consensus "
        "ranking (by score, stored order breaking ties), the winner (none when the top is tied) and the agreement."
    ),
}
