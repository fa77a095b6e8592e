"""What one exported row holds, per shape, and its column types.

Four shapes (``SHAPES``), each a function from one comparison's judgments to rows:

- ``pairs``: TRL-ready preference pairs — ``prompt``, ``chosen``, ``rejected`` — in the standard form (text) or
  the conversational one (lists of ``{"role", "content"}`` messages), with ``margin`` (strength × margin
  scale, as the reward model trains) and the judgment's ``strength``. Pairs are expanded from judgments by the
  rules of ``preference.expansion`` — the ones reward training uses: a winner among K gives K−1 pairs, a K-way
  ranking all K(K−1)/2, a tie is dropped or (``ties="soft"``) kept once per candidate pair with ``label`` 0.5.
- ``rankings``: one row per judgment, the candidates best first with their ``ranks`` (1 = best; candidates
  an answer does not order share a rank: a tie ranks all 1, a winner among K ranks the rest 2). Expanding a
  row into pairs: every two candidates with different ranks give (better, worse); equal ranks are a tie.
  That is exactly the ``pairs`` shape's policy.
- ``judgments``: the raw record, one row per annotator's judgment: candidates (with their origin: round and
  model version), winner / tie / ranking, strength, ratings, spans, rationale, shown order, time spent, round.
  Importing it back (``annotation.importers.labelled``) recreates the same judgments.
- ``consensus``: one row per comparison: its judgments' votes, each candidate's score (share of the pair
  votes it won, ties half), the consensus ranking (by score, stored order breaking ties), the winner (None
  when the top is tied) and the agreement (``PairVotes.comparison_agreement``).

Candidates are named by their external ids everywhere (ids that survive an import into another database).
Columns whose shape depends on the project (``ratings``, ``origin``, ``gold_answer``) are JSON text in every
format; CSV also writes lists and objects as JSON text (what the importer reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pyarrow as pa

from preference.prompts import prompt_messages, render_prompt

from .source import CandidateRow, ComparisonGroup, JudgmentRow

SHAPES = ("pairs", "rankings", "judgments", "consensus")
PAIR_FORMS = ("standard", "conversational")
TIE_POLICIES = ("drop", "soft")

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_SPAN = pa.struct(
    [
        ("candidate", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("box", pa.list_(pa.float64())),
        ("category", pa.string()),
        ("note", pa.string()),
    ]
)
_CANDIDATE = pa.struct(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("media", pa.string()),
        ("mime_type", pa.string()),
        ("source", pa.string()),
        ("round", pa.string()),
        ("model_version", pa.string()),
        ("origin", pa.string()),
    ]
)


@dataclass(frozen=True)
class ShapeOptions:
    form: str = "standard"  # pairs: standard | conversational
    ties: str = "drop"  # pairs: drop | soft
    margin_scale: float = 1.0  # pairs: margin = strength (how much better the winner is) × margin_scale
    # csv: a text cell a spreadsheet would run as a formula (starting with = + - @ TAB or CR) gets a leading '
    spreadsheet_safe: bool = False
    quality: bool = False  # pairs, rankings, judgments: add the columns QUALITY_COLUMNS


QUALITY_COLUMNS = [("weight", pa.float64()), ("annotator_reliability", pa.float64())]
"""With ``quality``: the weight reward training gives the judgment's pairs (0 when its annotator is excluded; the
annotator's reliability weight, annotation.quality) and the reliability model's accuracy estimate for the annotator
(empty before the first quality computation)."""


def schema_for(shape: str, options: ShapeOptions) -> pa.Schema:
    schema = _schema_for(shape, options)
    if options.quality and shape != "consensus":
        for name, type_ in QUALITY_COLUMNS:
            schema = schema.append(pa.field(name, type_))
    return schema


def _schema_for(shape: str, options: ShapeOptions) -> pa.Schema:
    if shape == "pairs":
        text = _MESSAGES if options.form == "conversational" else pa.string()
        return pa.schema(
            [
                ("prompt", text),
                ("chosen", text),
                ("rejected", text),
                ("margin", pa.float64()),
                ("label", pa.float64()),
                ("strength", pa.int64()),
                ("agreement", pa.float64()),
                ("chosen_media", pa.string()),
                ("rejected_media", pa.string()),
                ("prompt_id", pa.string()),
                ("comparison_id", pa.string()),
                ("chosen_id", pa.string()),
                ("rejected_id", pa.string()),
                ("judgment_id", pa.int64()),
                ("annotator", pa.string()),
                ("split", pa.string()),
            ]
        )
    if shape == "rankings":
        return pa.schema(
            [
                ("prompt", pa.string()),
                ("responses", pa.list_(pa.string())),
                ("response_ids", pa.list_(pa.string())),
                ("ranks", pa.list_(pa.int64())),
                ("media", pa.list_(pa.string())),
                ("strength", pa.int64()),
                ("prompt_id", pa.string()),
                ("comparison_id", pa.string()),
                ("judgment_id", pa.int64()),
                ("annotator", pa.string()),
                ("split", pa.string()),
            ]
        )
    if shape == "judgments":
        return pa.schema(
            [
                ("judgment_id", pa.int64()),
                ("comparison_id", pa.string()),
                ("prompt_id", pa.string()),
                ("prompt", pa.string()),
                ("context", _MESSAGES),
                ("split", pa.string()),
                ("is_gold", pa.bool_()),
                ("gold_answer", pa.string()),
                ("round", pa.string()),
                ("annotator", pa.string()),
                ("candidates", pa.list_(_CANDIDATE)),
                ("winner", pa.string()),
                ("tie", pa.bool_()),
                ("ranking", pa.list_(pa.string())),
                ("strength", pa.int64()),
                ("ratings", pa.string()),
                ("spans", pa.list_(_SPAN)),
                ("rationale", pa.string()),
                ("shown_order", pa.list_(pa.string())),
                ("time_spent_ms", pa.int64()),
                ("created_at", pa.string()),
            ]
        )
    if shape == "consensus":
        return pa.schema(
            [
                ("comparison_id", pa.string()),
                ("prompt_id", pa.string()),
                ("prompt", pa.string()),
                ("split", pa.string()),
                ("is_gold", pa.bool_()),
                ("round", pa.string()),
                ("candidate_ids", pa.list_(pa.string())),
                ("candidates", pa.list_(pa.string())),
                ("n_judgments", pa.int64()),
                ("scores", pa.list_(pa.float64())),
                ("consensus_ranking", pa.list_(pa.string())),
                ("winner", pa.string()),
                ("tie", pa.bool_()),
                ("agreement", pa.float64()),
                ("mean_strength", pa.float64()),
            ]
        )
    raise ValueError(f"unknown shape {shape!r}")


JSON_TEXT_COLUMNS = frozenset(("ratings", "gold_answer"))
"""Columns that are JSON text in every format (their keys depend on the project)."""


def _round(origin: dict) -> str | None:
    value = (origin or {}).get("round")
    return None if value is None else str(value)


class RowBuilder:
    """Rows of one shape. ``media(candidate)`` gives a media candidate's reference (URL or packed path)."""

    def __init__(
        self,
        shape: str,
        options: ShapeOptions,
        media: Callable[[CandidateRow], str | None],
        annotator_quality: Mapping[str, tuple[float, float | None]] | None = None,
    ):
        self.shape = shape
        self.options = options
        self.media = media
        self.rows = getattr(self, f"_{shape}")
        if options.quality and shape != "consensus":
            self._plain_rows, self._annotator_quality = self.rows, annotator_quality or {}
            self.rows = self._with_quality

    def _with_quality(self, group: ComparisonGroup) -> Iterator[dict]:
        """Each row with its judgment's weight and annotator's reliability (username → (weight, reliability))."""
        known = self._annotator_quality
        for row in self._plain_rows(group):
            row["weight"], row["annotator_reliability"] = known.get(row["annotator"], (1.0, None))
            yield row

    # (a) pairs ----------------------------------------------------------------------------------------------
    def _pairs(self, group: ComparisonGroup) -> Iterator[dict]:
        options = self.options
        conversational, drop_ties = options.form == "conversational", options.ties == "drop"
        # The prompt, each candidate's text and media, and each pair's agreement are the comparison's: made once
        # for all its pairs (media in the order the rows first refer to them, as a packed export lists them).
        first = group.judgments[0]
        prompt = prompt_messages(first.prompt_text, first.prompt_context) if conversational else _prompt(first)
        texts: dict[int, str | list] = {}
        media: dict[int, str | None] = {}
        agreements: dict[tuple, float | None] = {}
        pair_agreement = group.votes.pair_agreement
        for j in group.judgments:
            for better, worse, label, margin in j.pairs(margin_scale=options.margin_scale):
                if label == 0.5 and drop_ties:
                    continue
                chosen, rejected = j.candidates[better], j.candidates[worse]
                if better not in texts:
                    texts[better] = self._pair_text(chosen, conversational)
                if worse not in texts:
                    texts[worse] = self._pair_text(rejected, conversational)
                if better not in media:
                    media[better] = self.media(chosen)
                if worse not in media:
                    media[worse] = self.media(rejected)
                pair = (better, worse)
                if pair not in agreements:
                    agreements[pair] = pair_agreement(better, worse)
                yield {
                    "prompt": prompt,
                    "chosen": texts[better],
                    "rejected": texts[worse],
                    "margin": margin,
                    "label": label,
                    "strength": j.strength,
                    "agreement": agreements[pair],
                    "chosen_media": media[better],
                    "rejected_media": media[worse],
                    "prompt_id": j.prompt_external_id,
                    "comparison_id": j.comparison_external_id,
                    "chosen_id": chosen.external_id,
                    "rejected_id": rejected.external_id,
                    "judgment_id": j.id,
                    "annotator": j.annotator,
                    "split": j.split,
                }

    @staticmethod
    def _pair_text(candidate: CandidateRow, conversational: bool) -> str | list:
        return [{"role": "assistant", "content": candidate.text}] if conversational else candidate.text

    # (b) rankings -------------------------------------------------------------------------------------------
    def _rankings(self, group: ComparisonGroup) -> Iterator[dict]:
        prompt = _prompt(group.judgments[0])  # the comparison's, the same for all its judgments
        for j in group.judgments:
            ordered, ranks = judgment_ranks(j)
            yield {
                "prompt": prompt,
                "responses": [j.candidates[c].text for c in ordered],
                "response_ids": [j.candidates[c].external_id for c in ordered],
                "ranks": ranks,
                "media": [self.media(j.candidates[c]) for c in ordered],
                "strength": j.strength,
                "prompt_id": j.prompt_external_id,
                "comparison_id": j.comparison_external_id,
                "judgment_id": j.id,
                "annotator": j.annotator,
                "split": j.split,
            }

    # (c) raw judgments --------------------------------------------------------------------------------------
    def _judgments(self, group: ComparisonGroup) -> Iterator[dict]:
        # What comes from the comparison (its prompt, candidates, gold answer) is the same for all its judgments:
        # made once per comparison, the rows share it (and CSV encodes a shared candidates list once).
        first = group.judgments[0]
        names = {c: cand.external_id for c, cand in first.candidates.items()}
        comparison_id, prompt_id, prompt = first.comparison_external_id, first.prompt_external_id, first.prompt_text
        context, split, is_gold = first.prompt_context or [], first.split, first.is_gold
        gold_answer, round_ = _gold_answer(first.gold_answer, names), _round(first.comparison_origin)
        candidates = [self._candidate(first.candidates[c]) for c in first.candidate_ids]
        # Ratings' keys that are candidate ids (as text), renamed by lookup; any other key as _rating_key says.
        rating_keys = {str(c): name for c, name in names.items() if type(c) is int and c >= 0}
        dumps = orjson.dumps
        for j in group.judgments:
            yield {
                "judgment_id": j.id,
                "comparison_id": comparison_id,
                "prompt_id": prompt_id,
                "prompt": prompt,
                "context": context,
                "split": split,
                "is_gold": is_gold,
                "gold_answer": gold_answer,
                "round": round_,
                "annotator": j.annotator,
                "candidates": candidates,
                "winner": names[j.winner_id] if j.winner_id is not None else None,
                "tie": j.tie,
                "ranking": [names[c] for c in j.ranking] if j.ranking is not None else None,
                "strength": j.strength,
                "ratings": dumps(
                    {
                        rating_keys[k] if k in rating_keys else _rating_key(k, names): v
                        for k, v in (j.ratings or {}).items()
                    }
                ).decode(),
                "spans": j.spans,
                "rationale": j.rationale,
                "shown_order": [names[c] for c in j.shown_order or [] if c in names],
                "time_spent_ms": j.time_spent_ms,
                "created_at": _isoformat(j.created_at),
            }

    def _candidate(self, c: CandidateRow) -> dict:
        # Built once per candidate and chunk, then shared by the rows that show it (rows are written, not kept).
        if c.exported is None:
            version = c.origin.get("model_version")
            c.exported = {
                "id": c.external_id,
                "text": c.text,
                "media": self.media(c),
                "mime_type": c.mime_type,
                "source": c.source,
                "round": _round(c.origin),
                "model_version": None if version is None else str(version),
                "origin": c.origin_json if isinstance(c.origin_json, str) else orjson.dumps(c.origin).decode(),
            }
        return c.exported

    # (d) consensus ------------------------------------------------------------------------------------------
    def _consensus(self, group: ComparisonGroup) -> Iterator[dict]:
        first = group.judgments[0]
        ids = first.candidate_ids
        won = group.votes.scores()
        contests = {c: 0.0 for c in ids}
        for votes in group.votes.tally.values():
            both = sum(votes.values())
            for c in votes:
                contests[c] += both
        scores = [won[c] / contests[c] if contests[c] else 0.0 for c in ids]
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], i))
        top_tied = len(ids) > 1 and scores[order[0]] == scores[order[1]]
        strengths = [j.strength for j in group.judgments if j.strength is not None]
        yield {
            "comparison_id": first.comparison_external_id,
            "prompt_id": first.prompt_external_id,
            "prompt": _prompt(first),
            "split": first.split,
            "is_gold": first.is_gold,
            "round": _round(first.comparison_origin),
            "candidate_ids": [first.candidates[c].external_id for c in ids],
            "candidates": [first.candidates[c].text for c in ids],
            "n_judgments": len(group.judgments),
            "scores": scores,
            "consensus_ranking": [first.candidates[ids[i]].external_id for i in order],
            "winner": None if top_tied else first.candidates[ids[order[0]]].external_id,
            "tie": top_tied,
            "agreement": group.agreement,
            "mean_strength": sum(abs(s) for s in strengths) / len(strengths) if strengths else None,
        }


def judgment_ranks(j: JudgmentRow) -> tuple[list[int], list[int]]:
    """The candidates best first and their ranks (1 = best; unordered candidates share a rank)."""
    if j.ranking is not None:
        return list(j.ranking), list(range(1, len(j.ranking) + 1))
    if j.tie:
        return list(j.candidate_ids), [1] * len(j.candidate_ids)
    others = [c for c in j.candidate_ids if c != j.winner_id]
    return [j.winner_id, *others], [1] + [2] * len(others)


_UTC = UTC


def _rating_key(key, names: dict[int, str]):
    """A ratings key: a candidate's id (digits) becomes its external id; any other key stays."""
    return names.get(int(key), key) if str(key).isdigit() else key


def _isoformat(moment: datetime) -> str:
    """``moment.isoformat()``; orjson writes a UTC datetime the same way (tested for every date) in a third of
    the time."""
    if moment.tzinfo is _UTC and type(moment) is datetime:
        return orjson.dumps(moment)[1:-1].decode()
    return moment.isoformat()


def _gold_answer(answer: dict | None, names: dict[int, str]) -> str | None:
    """A gold check's expected answer as JSON text, candidates named by external id."""
    if not answer:
        return None
    named = dict(answer)
    if named.get("winner") is not None:
        named["winner"] = names.get(named["winner"], named["winner"])
    if isinstance(named.get("ranking"), list):
        named["ranking"] = [names.get(c, c) for c in named["ranking"]]
    return orjson.dumps(named).decode()


def _prompt(j: JudgmentRow) -> str:
    return render_prompt(j.prompt_text, j.prompt_context)
