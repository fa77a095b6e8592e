"""Import existing labels: raw judgments (the ``judgments`` export shape) and preference pairs (TRL's
``prompt``/``chosen``/``rejected``, e.g. to seed a reward model from a public dataset), from JSON Lines, CSV,
Parquet or a Hugging Face dataset saved on disk (``datasets.load_from_disk``).

All or nothing, like the core import: a first pass reads every row, checks it on its own and against the
database (unknown annotator, an id stored with different content) and reports every bad row by line; only when
none failed does a second pass read the file again and write it inside ONE transaction. No more than one batch
of rows is held at a time (plus one small fingerprint per distinct id, to find contradictions inside the file).

**Pairs** — columns ``prompt`` (text, or chat messages: the last user message is the prompt, earlier turns its
context), ``chosen``, ``rejected`` (text, or messages: the assistant's content). Without ``prompt`` (the
implicit form, as in Anthropic's hh-rlhf) the prompt is the longest common prefix of chosen and rejected, cut
back to a word boundary (TRL's ``extract_prompt``). Optional: ``strength`` (or an integral ``margin``),
``label`` (0.5 = a tie), ``annotator`` (a member of the project, by username; default: the importing user),
``split``, and the ids ``prompt_id``, ``chosen_id``, ``rejected_id`` (derived from a hash of the content when
absent, so re-importing a file finds its own rows). Each pair becomes one comparison of its two candidates (stored in id
order, so the chosen one is not always first) with one judgment, and is not served to annotators.

**Judgments** — the columns of the ``judgments`` export shape; annotators must be members of the project. A
comparison gets the judgments of the file (its ``wanted`` grows to match, so imported labels are not served again).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.dateparse import parse_datetime

from ..exporters.formats import spreadsheet_safe_undo
from ..models import (
    Candidate,
    Comparison,
    ComparisonStatus,
    Judgment,
    Membership,
    Project,
    Prompt,
    SpanMark,
    Split,
)
from .locking import project_import_lock
from .rejection import UNSTORABLE, ImportRejected, _Errors, unstorable_field

logger = logging.getLogger(__name__)

LABELLED_KINDS = ("pairs", "judgments")
LABELLED_FORMATS = ("jsonl", "csv", "parquet", "hf")
BATCH_ROWS = 2000

_PAIR_COLUMNS = {
    "prompt": "json_or_text",
    "chosen": "json_or_text",
    "rejected": "json_or_text",
    "margin": "float",
    "label": "float",
    "strength": "int",
    "agreement": "float",
    "chosen_media": "text",
    "rejected_media": "text",
    "prompt_id": "text",
    "comparison_id": "text",
    "chosen_id": "text",
    "rejected_id": "text",
    "judgment_id": "int",
    "annotator": "text",
    "split": "text",
}
_JUDGMENT_COLUMNS = {
    "judgment_id": "int",
    "comparison_id": "text",
    "prompt_id": "text",
    "prompt": "text",
    "context": "json",
    "split": "text",
    "is_gold": "bool",
    "gold_answer": "json_or_text",
    "round": "text",
    "annotator": "text",
    "candidates": "json",
    "winner": "text",
    "tie": "bool",
    "ranking": "json",
    "strength": "int",
    "ratings": "json_or_text",
    "spans": "json",
    "rationale": "text",
    "shown_order": "json",
    "time_spent_ms": "int",
    "created_at": "text",
}
COLUMNS = {"pairs": _PAIR_COLUMNS, "judgments": _JUDGMENT_COLUMNS}
REQUIRED = {
    "pairs": ("chosen", "rejected"),
    "judgments": ("comparison_id", "prompt_id", "prompt", "annotator", "candidates"),
}


class _Bad(Exception):
    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message


def _strength_in(value: object) -> int | None:
    """How much better the winner is (annotation.schema): a whole number; a signed one, as older Tandem
    exports and HelpSteer2-style scales write it, is read as its size, its side being the winner."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad("strength", "Must be a whole number: how much better the chosen candidate is.")
    return abs(value)


# --- Reading ---------------------------------------------------------------------------------------------------


def _rows(path: Path, file_format: str, kind: str, options: dict) -> Iterator[tuple[int, dict | _Bad]]:
    columns = COLUMNS[kind]
    if file_format == "jsonl":
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    yield line_no, _Bad(None, f"Not valid JSON: {exc}.")
                    continue
                yield line_no, row if isinstance(row, dict) else _Bad(None, "Must be a JSON object.")
    elif file_format == "csv":
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with open(path, "rb") as f:
            reader = csv.reader(_utf8_lines(f))
            header = [h.strip() for h in next(reader, [])]
            _header_check(header, kind)
            for line_no, cells in enumerate(reader, 1):
                if any(cells):
                    yield line_no, _csv_row(dict(zip(header, cells, strict=False)), columns)
    elif file_format == "parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:
            raise _file_error(f"This is not a Parquet file, or it is truncated: {exc}.") from exc
        _header_check(parquet.schema_arrow.names, kind)
        line_no = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                line_no += 1
                yield line_no, row
    elif file_format == "hf":
        dataset = _hf_dataset(path, options.get("split") or "train")
        _header_check(dataset.column_names, kind)
        line_no = 0
        for batch in dataset.iter(batch_size=BATCH_ROWS):
            names = list(batch)
            for values in zip(*(batch[n] for n in names), strict=True):
                line_no += 1
                yield line_no, dict(zip(names, values, strict=True))
    else:
        raise _file_error(f"Unknown format {file_format!r}; one of {', '.join(LABELLED_FORMATS)}.")


def _hf_dataset(path: Path, split: str):
    try:
        import datasets
    except ImportError as exc:  # the web image has no `datasets`: such imports run on a worker that has it
        raise _file_error("Reading Hugging Face datasets needs the `datasets` package on this machine.") from exc
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise _file_error(f"Not a Hugging Face dataset saved with save_to_disk: {exc}.") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise _file_error(f"The dataset has no split {split!r}; it has {', '.join(loaded)}.", "split")
        loaded = loaded[split]
    return loaded


def _utf8_lines(raw) -> Iterator[str]:
    """The file's lines decoded as UTF-8 (a BOM dropped), refusing a line that is not, by its number."""
    for line_no, line in enumerate(raw, 1):
        try:
            text = line.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError:
            raise ImportRejected(
                [{"line": line_no, "field": None, "message": "Not UTF-8 text: save the file as UTF-8."}]
            ) from None
        yield text


def _file_error(message: str, field: str | None = None) -> ImportRejected:
    return ImportRejected([{"line": None, "field": field, "message": message}])


def _header_check(names: list[str], kind: str) -> None:
    unknown = [n for n in names if n not in COLUMNS[kind]]
    if unknown:
        raise _file_error(
            f"Unknown column(s) {', '.join(map(repr, unknown))} for a {kind} import; "
            f"the columns are: {', '.join(COLUMNS[kind])}.",
            unknown[0],
        )
    missing = [n for n in REQUIRED[kind] if n not in names]
    if missing:
        raise _file_error(f"Missing required column(s): {', '.join(map(repr, missing))}.", missing[0])


def _csv_row(cells: dict[str, str], columns: dict[str, str]) -> dict | _Bad:
    row: dict = {}
    for key, value in cells.items():
        if value == "":
            continue
        kind = columns.get(key)
        try:
            if kind == "json" or (kind == "json_or_text" and value[:1] in "[{"):
                row[key] = json.loads(value)
            elif kind == "int":
                row[key] = int(value)
            elif kind == "float":
                row[key] = float(value)
            elif kind == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    return _Bad(key, f"Must be true or false, not {value!r}.")
                row[key] = value.lower() in ("true", "1")
            else:
                row[key] = spreadsheet_safe_undo(value)  # what a spreadsheet-safe CSV export changed, back
        except ValueError as exc:
            return _Bad(key, f"Not a valid {kind} value: {exc}.")
    return row


# --- Parsing one row (no database) ------------------------------------------------------------------------------


@dataclass
class _CandidateIn:
    external_id: str
    text: str
    mime_type: str = "text/plain"
    source: str = "imported"
    origin: dict = field(default_factory=dict)


@dataclass
class _Labelled:
    """One comparison and one judgment, in external ids."""

    line: int
    prompt_id: str
    prompt_text: str
    context: list
    split: str
    comparison_id: str
    candidates: list[_CandidateIn]
    is_gold: bool
    origin: dict
    annotator: str | None
    gold_answer: dict | None = None
    winner: str | None = None
    tie: bool = False
    ranking: list[str] | None = None
    strength: int | None = None
    ratings: dict = field(default_factory=dict)
    spans: list[dict] = field(default_factory=list)
    rationale: str = ""
    shown_order: list[str] = field(default_factory=list)
    time_spent_ms: int | None = None
    created_at: datetime | None = None


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


def _turns(value, field_name: str) -> tuple[str, list]:
    """(text, context) of a prompt or response given as text or as chat messages."""
    if isinstance(value, str):
        return value, []
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return str(value[-1]["content"]), [
            {"role": str(m.get("role", "user")), "content": str(m["content"])} for m in value[:-1]
        ]
    raise _Bad(field_name, "Must be text or a non-empty list of {role, content} messages.")


def _implicit_prompt(chosen: str, rejected: str) -> tuple[str, str, str]:
    n = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        n += 1
    while n and not chosen[n - 1].isspace() and n < min(len(chosen), len(rejected)):
        n -= 1
    shared = chosen[:n].rstrip()
    return shared.lstrip(), chosen[len(shared) :].strip(), rejected[len(shared) :].strip()


def _parse_pair(line: int, row: dict) -> _Labelled:
    chosen, _ = _turns(row.get("chosen"), "chosen")
    rejected, _ = _turns(row.get("rejected"), "rejected")
    if row.get("prompt") in (None, ""):
        prompt, chosen, rejected = _implicit_prompt(chosen, rejected)
        if not prompt:
            raise _Bad("prompt", "No prompt column and chosen and rejected share no beginning to take it from.")
        context: list = []
    else:
        prompt, context = _turns(row["prompt"], "prompt")
    if chosen == rejected:
        raise _Bad("rejected", "Chosen and rejected are the same text.")
    prompt_id = str(row.get("prompt_id") or f"p-{_digest(prompt, context)}")
    chosen_id = str(row.get("chosen_id") or f"c-{_digest(prompt_id, chosen)}")
    rejected_id = str(row.get("rejected_id") or f"c-{_digest(prompt_id, rejected)}")
    if chosen_id == rejected_id:
        raise _Bad("rejected_id", "Chosen and rejected have the same id.")
    strength = row.get("strength")
    if strength is None and row.get("margin") not in (None, 0, 0.0):
        margin = row["margin"]
        if not isinstance(margin, int | float) or margin < 0 or float(margin) != int(margin):
            raise _Bad("margin", "Without a strength column, a margin must be a whole number ≥ 0 (it becomes one).")
        strength = int(margin)
    strength = _strength_in(strength)
    label = row.get("label", 1.0)
    if label not in (None, 1, 1.0, 0.5):
        raise _Bad("label", "Must be 1.0 (chosen preferred) or 0.5 (a tie).")
    split = row.get("split") or Split.TRAIN
    if split not in Split.values:
        raise _Bad("split", f"Must be one of {', '.join(Split.values)}.")
    ids = sorted([chosen_id, rejected_id])
    texts = {chosen_id: chosen, rejected_id: rejected}
    tie = label == 0.5
    return _Labelled(
        line=line,
        prompt_id=prompt_id,
        prompt_text=prompt,
        context=context,
        split=split,
        comparison_id=f"pair-{_digest(prompt_id, chosen_id, rejected_id)}",
        candidates=[_CandidateIn(c, texts[c]) for c in ids],
        is_gold=False,
        origin={"imported_pairs": True},
        annotator=row.get("annotator"),
        winner=None if tie else chosen_id,
        tie=tie,
        strength=None if tie else strength,
    )


def _parse_judgment(line: int, row: dict) -> _Labelled:
    candidates = row.get("candidates")
    if not isinstance(candidates, list) or len(candidates) < 2:
        raise _Bad("candidates", "Must be a list of at least 2 candidates.")
    parsed = []
    for i, c in enumerate(candidates):
        if not isinstance(c, dict) or not c.get("id"):
            raise _Bad(f"candidates[{i}]", "Each candidate needs an id.")
        origin = c.get("origin") or {}
        if isinstance(origin, str):
            origin = json.loads(origin)
        parsed.append(
            _CandidateIn(
                str(c["id"]),
                c.get("text") or "",
                c.get("mime_type") or "text/plain",
                c.get("source") or "imported",
                origin,
            )
        )
    names = [c.external_id for c in parsed]
    if len(set(names)) != len(names):
        raise _Bad("candidates", "A candidate id appears twice.")
    answers = sum([row.get("winner") is not None, row.get("ranking") is not None, bool(row.get("tie"))])
    if answers != 1:
        raise _Bad("winner", "Give exactly one of winner, ranking or tie = true.")
    if row.get("winner") is not None and row["winner"] not in names:
        raise _Bad("winner", f"{row['winner']!r} is not one of the candidates.")
    ranking = row.get("ranking")
    if ranking is not None and sorted(map(str, ranking)) != sorted(names):
        raise _Bad("ranking", "Must order every candidate exactly once.")
    ratings = row.get("ratings") or {}
    if isinstance(ratings, str):
        ratings = json.loads(ratings)
    if not isinstance(ratings, dict) or any(k not in names for k in ratings):
        raise _Bad("ratings", "Must map candidate ids to ratings.")
    spans = row.get("spans") or []
    for i, span in enumerate(spans):
        if not isinstance(span, dict) or span.get("candidate") not in names or not span.get("category"):
            raise _Bad(f"spans[{i}]", "Each span needs one of the candidates and a category.")
    created_at = parse_datetime(row["created_at"]) if row.get("created_at") else None
    split = row.get("split") or Split.TRAIN
    if split not in Split.values:
        raise _Bad("split", f"Must be one of {', '.join(Split.values)}.")
    round_id = row.get("round")
    return _Labelled(
        line=line,
        prompt_id=str(row["prompt_id"]),
        prompt_text=str(row["prompt"]),
        context=row.get("context") or [],
        split=split,
        comparison_id=str(row["comparison_id"]),
        candidates=parsed,
        is_gold=bool(row.get("is_gold")),
        gold_answer=_gold_in(row.get("gold_answer"), names),
        origin={} if round_id is None else {"round": int(round_id) if str(round_id).isdigit() else round_id},
        annotator=str(row["annotator"]),
        winner=row.get("winner"),
        tie=bool(row.get("tie")),
        ranking=[str(r) for r in ranking] if ranking is not None else None,
        strength=_strength_in(row.get("strength")) if row.get("winner") is not None else None,  # a winner's only
        ratings=ratings,
        spans=spans,
        rationale=row.get("rationale") or "",
        shown_order=[str(s) for s in row.get("shown_order") or [] if s in names],
        time_spent_ms=row.get("time_spent_ms"),
        created_at=created_at,
    )


def _gold_in(value, names: list[str]) -> dict | None:
    if value in (None, ""):
        return None
    answer = json.loads(value) if isinstance(value, str) else value
    if not isinstance(answer, dict):
        raise _Bad("gold_answer", "Must be an object: {winner}, {ranking} or {tie}.")
    named = [answer.get("winner")] if answer.get("winner") is not None else list(answer.get("ranking") or [])
    if any(c not in names for c in named):
        raise _Bad("gold_answer", "Names a candidate the row does not have.")
    return answer


_PARSERS = {"pairs": _parse_pair, "judgments": _parse_judgment}


def _parsed_batches(path, file_format, kind, options, errors: _Errors) -> Iterator[list[_Labelled]]:
    parse = _PARSERS[kind]
    batch: list[_Labelled] = []
    for line, row in _rows(Path(path), file_format, kind, options):
        try:
            if isinstance(row, _Bad):
                raise row
            bad_field = unstorable_field(row)
            if bad_field is not None:
                raise _Bad(bad_field, UNSTORABLE)
            missing = [c for c in REQUIRED[kind] if row.get(c) in (None, "")]
            if missing:
                raise _Bad(missing[0], "Required.")
            batch.append(parse(line, row))
        except _Bad as bad:
            errors.add(line, bad.field, bad.message)
        except (TypeError, ValueError, KeyError) as exc:
            errors.add(line, None, f"Cannot read this row: {exc}.")
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


# --- Checking against the file and the database, then writing ------------------------------------------------


class _Fingerprints:
    """One digest per distinct id seen in the file: the same id with different content is an error."""

    def __init__(self):
        self.seen: dict[tuple[str, str], str] = {}

    def check(self, table: str, external_id: str, content, errors: _Errors, line: int, field: str) -> None:
        digest = _digest(content)
        previous = self.seen.setdefault((table, external_id), digest)
        if previous != digest:
            errors.add(line, field, f"{table} {external_id!r} appears earlier in the file with different content.")


def _check_batch(project, batch: list[_Labelled], seen: _Fingerprints, users: dict, default_annotator, errors):
    names = {r.annotator for r in batch if r.annotator}
    missing = names - users.keys()
    if missing:
        # Only the project's members: a file must not put judgments in the name of someone outside it.
        users.update(
            get_user_model()
            .objects.filter(username__in=missing, memberships__project=project)
            .values_list("username", "pk")
        )
    prompts = dict(
        Prompt.objects.filter(project=project, external_id__in={r.prompt_id for r in batch}).values_list(
            "external_id", "text"
        )
    )
    candidates = {
        ext: (text, prompt_ext)
        for ext, text, prompt_ext in Candidate.objects.filter(
            project=project, external_id__in={c.external_id for r in batch for c in r.candidates}
        ).values_list("external_id", "text", "prompt__external_id")
    }
    for r in batch:
        if r.annotator and r.annotator not in users:
            errors.add(r.line, "annotator", _not_a_member(r.annotator))
        if not r.annotator and default_annotator is None:
            errors.add(r.line, "annotator", "No annotator column and no importing user to credit.")
        seen.check("prompt", r.prompt_id, [r.prompt_text, r.context], errors, r.line, "prompt")
        if r.prompt_id in prompts and prompts[r.prompt_id] != r.prompt_text:
            errors.add(r.line, "prompt", f"Prompt {r.prompt_id!r} exists with a different text.")
        for c in r.candidates:
            seen.check("candidate", c.external_id, [r.prompt_id, c.text], errors, r.line, "candidates")
            stored = candidates.get(c.external_id)
            if stored is not None and stored != (c.text, r.prompt_id):
                errors.add(r.line, "candidates", f"Candidate {c.external_id!r} exists with a different text or prompt.")
        seen.check(
            "comparison", r.comparison_id, [c.external_id for c in r.candidates], errors, r.line, "comparison_id"
        )


def _not_a_member(username: str) -> str:
    return f"{username!r} is not a member of this project; add them as a member first."


def labelled_import(
    *,
    project: Project,
    kind: str,
    path,
    file_format: str,
    options: dict | None = None,
    user=None,
    before_commit=None,
) -> dict:
    """Import a file of pairs or judgments, all or nothing; return counts; raise :class:`ImportRejected`.
    ``before_commit(counts)``: the last call inside the write transaction (an import job's fenced ``succeeded``)."""
    options = options or {}
    if kind not in LABELLED_KINDS:
        raise _file_error(f"Unknown kind {kind!r}; one of {', '.join(LABELLED_KINDS)}.", "kind")
    if user is not None and not Membership.objects.filter(project=project, user=user).exists():
        raise _file_error(_not_a_member(user.username), "annotator")
    # Checked and written under the project's import lock: a second import of the same file waits, then finds
    # every row there (unchanged) instead of failing on a unique constraint.
    with project_import_lock(project.pk):
        errors = _Errors()
        seen = _Fingerprints()
        users: dict[str, int] = {}
        for batch in _parsed_batches(path, file_format, kind, options, errors):
            _check_batch(project, batch, seen, users, user, errors)
        if errors.count:
            raise ImportRejected(errors.as_list())
        del seen
        counts = {"prompts": 0, "candidates": 0, "comparisons": 0, "judgments": 0, "unchanged": 0}
        try:
            with transaction.atomic():
                for batch in _parsed_batches(path, file_format, kind, options, errors):
                    _write_batch(project, batch, users, user, counts)
                if before_commit is not None:
                    before_commit(counts)
        except IntegrityError as exc:
            # The database's words name its tables and columns: logged, not shown.
            logger.warning("label import into project %s refused by the database: %s", project.pk, exc)
            raise _file_error(
                "The project changed while this import ran (rows it refers to were deleted); nothing was written. "
                "Run it again: imports are idempotent."
            ) from exc
    return counts


def _write_batch(project, batch: list[_Labelled], users: dict, default_user, counts: dict) -> None:
    prompt_pks = _ensure(
        Prompt,
        project,
        {
            r.prompt_id: Prompt(
                project=project, external_id=r.prompt_id, text=r.prompt_text, context=r.context, split=r.split
            )
            for r in batch
        },
        counts,
        "prompts",
    )
    candidate_pks = _ensure(
        Candidate,
        project,
        {
            c.external_id: Candidate(
                project=project,
                prompt_id=prompt_pks[r.prompt_id],
                external_id=c.external_id,
                text=c.text,
                mime_type=c.mime_type,
                source=c.source,
                origin=c.origin,
            )
            for r in batch
            for c in r.candidates
        },
        counts,
        "candidates",
    )
    new_comparisons = {
        r.comparison_id: Comparison(
            project=project,
            prompt_id=prompt_pks[r.prompt_id],
            external_id=r.comparison_id,
            candidate_ids=[candidate_pks[c.external_id] for c in r.candidates],
            wanted=0,
            status=ComparisonStatus.DONE,
            is_gold=r.is_gold,
            gold_answer=_gold_pks(r.gold_answer, candidate_pks) if r.is_gold else None,
            origin=r.origin,
        )
        for r in batch
    }
    comparison_pks = _ensure(Comparison, project, new_comparisons, counts, "comparisons")
    annotator_of = {r.line: users[r.annotator] if r.annotator else default_user.pk for r in batch}
    existing = set(
        Judgment.objects.filter(comparison_id__in=set(comparison_pks.values())).values_list(
            "comparison_id", "annotator_id"
        )
    )
    judgments, spans_of = [], []
    for r in batch:
        comparison_pk, annotator = comparison_pks[r.comparison_id], annotator_of[r.line]
        if (comparison_pk, annotator) in existing:
            counts["unchanged"] += 1
            continue
        existing.add((comparison_pk, annotator))
        pk_of = {c.external_id: candidate_pks[c.external_id] for c in r.candidates}
        judgments.append(
            Judgment(
                project=project,
                comparison_id=comparison_pk,
                annotator_id=annotator,
                winner_id=pk_of[r.winner] if r.winner is not None else None,
                tie=r.tie,
                ranking=[pk_of[c] for c in r.ranking] if r.ranking is not None else None,
                strength=r.strength,
                ratings={str(pk_of[k]): v for k, v in r.ratings.items()},
                rationale=r.rationale,
                shown_order=[pk_of[c] for c in r.shown_order],
                time_spent_ms=r.time_spent_ms,
                idempotency_key=f"import:{project.pk}:{r.comparison_id}",
            )
        )
        spans_of.append((r, pk_of))
    created = Judgment.objects.bulk_create(judgments)
    counts["judgments"] += len(created)
    SpanMark.objects.bulk_create(
        SpanMark(
            judgment_id=j.pk,
            candidate_id=pk_of[s["candidate"]],
            start=s.get("start"),
            end=s.get("end"),
            box=s.get("box"),
            category=s["category"],
            note=s.get("note") or "",
        )
        for j, (r, pk_of) in zip(created, spans_of, strict=True)
        for s in r.spans
    )
    for j, (r, _) in zip(created, spans_of, strict=True):
        if r.created_at is not None:
            Judgment.objects.filter(pk=j.pk).update(created_at=r.created_at)
    # Imported labels count as judged: a comparison wants what it has (plus live leases), so none is served again.
    touched = {j.comparison_id for j in created}
    for comparison_pk in touched:
        judged = Judgment.objects.filter(comparison_id=comparison_pk).count()
        Comparison.objects.filter(pk=comparison_pk).update(
            judged=judged,
            wanted=_greatest(F("wanted"), judged + F("leased")),
        )
        Comparison.objects.filter(pk=comparison_pk, judged=F("wanted")).update(status=ComparisonStatus.DONE)


def _gold_pks(answer: dict | None, candidate_pks: dict[str, int]) -> dict:
    """The gold answer with candidates as primary keys (as stored); a gold row without one keeps a marker."""
    if not answer:
        return {"imported_without_answer": True}
    stored = dict(answer)
    if stored.get("winner") is not None:
        stored["winner"] = candidate_pks[stored["winner"]]
    if isinstance(stored.get("ranking"), list):
        stored["ranking"] = [candidate_pks[c] for c in stored["ranking"]]
    return stored


def _greatest(a, b):
    from django.db.models.functions import Greatest

    return Greatest(a, b)


def _ensure(model, project, objects: dict, counts: dict, name: str) -> dict[str, int]:
    """external id → pk, creating the rows not stored yet."""
    stored = dict(model.objects.filter(project=project, external_id__in=objects).values_list("external_id", "pk"))
    new = [obj for ext, obj in objects.items() if ext not in stored]
    for obj in model.objects.bulk_create(new):
        stored[obj.external_id] = obj.pk
    counts[name] += len(new)
    return stored
