"""Parsing and checking one row on its own, without the database: the columns of
each import kind, a row's prompt, candidates and comparisons, the field helpers
(ids, texts, numbers, gold answers), and ids that repeat within the file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from ..comparisons import BuildModeInvalid, candidate_groups, comparison_external_id
from ..media import MediaInfo, MediaInvalid
from ..models import Modality, Project, Split
from ..schema import SchemaError, parse_schema
from .rejection import UNSTORABLE, _Errors, _rejected, _storable_text, unstorable_field

MAX_EXTERNAL_ID = 255
PRIORITY_RANGE = (-1_000_000, 1_000_000)
CONTEXT_ROLES = ("system", "user", "assistant")

_PROMPT_COLUMNS = {"id": "id", "text": "str", "context": "json", "split": "str", "metadata": "json"}
_CANDIDATE_COLUMNS = {
    "id": "id",
    "prompt_id": "id",
    "text": "str",
    "mime_type": "str",
    "media": "str",
    "metadata": "json",
    "origin": "json",
}
_COMPARISON_COLUMNS = {
    "id": "id",
    "prompt_id": "id",
    "candidate_ids": "json",
    "priority": "int",
    "wanted": "int",
    "gold": "json",
}
_BUNDLE_COLUMNS = {**_PROMPT_COLUMNS, "candidates": "json", "comparisons": "json_or_mode", "priority": "int"}
_BUNDLE_CANDIDATE_KEYS = frozenset(("id", "text", "mime_type", "media", "metadata", "origin"))
_BUNDLE_COMPARISON_KEYS = frozenset(("id", "candidate_ids", "priority", "wanted", "gold"))
_BUNDLE_ONLY = frozenset(("candidates", "comparisons", "priority"))


class _MediaFiles(Protocol):
    """The files uploaded with an import (zipped._ZipMedia)."""

    def check(self, name: str) -> MediaInfo:
        """What annotation.media.media_check found in the file of this name; raises MediaInvalid (also for a name
        that is not there)."""
        ...

    def store(self, name: str, info: MediaInfo) -> None:
        """Store the file of this name (checked before: ``info``) in the candidates' storage."""
        ...


@dataclass(frozen=True)
class _Context:
    kind: str
    project_id: int
    modality: str
    arity: int
    allow_tie: bool
    overlap: int
    serve_prompt_pairs_together: bool
    default_comparisons: str | None
    columns: dict[str, str]  # name → "id" | "str" | "int" | "json" | "json_or_mode"
    column_set: frozenset
    required: tuple[str, ...]
    # Tables ("prompt", "candidate", "comparison") that held no row of the project
    # when the import started: nothing to look up there (see plan._stored).
    empty_at_start: frozenset = frozenset()
    # The files a candidate's ``media`` may name: a zip upload's (zipped._ZipMedia); None for a plain file,
    # where ``media`` is refused (a name would otherwise point at a file on the server, DESIGN §9).
    media: _MediaFiles | None = None


def _context(project: Project, kind: str, options: dict) -> _Context:
    try:
        schema = parse_schema(project.schema)
    except SchemaError as exc:
        raise _rejected(f"The project's labeling schema is invalid, fix it first: {exc}") from exc
    text_required = project.modality == Modality.TEXT
    columns, required = {
        "prompts": (_PROMPT_COLUMNS, ("text",)),
        "candidates": (_CANDIDATE_COLUMNS, ("prompt_id", "text") if text_required else ("prompt_id",)),
        "comparisons": (_COMPARISON_COLUMNS, ("prompt_id", "candidate_ids")),
        "bundle": (_BUNDLE_COLUMNS, ("text",)),
    }[kind]
    return _Context(
        kind=kind,
        project_id=project.pk,
        modality=project.modality,
        arity=schema.arity,
        allow_tie=schema.allow_tie,
        overlap=project.overlap,
        serve_prompt_pairs_together=project.serve_prompt_pairs_together,
        default_comparisons=options.get("comparisons"),
        columns=columns,
        column_set=frozenset(columns),
        required=required,
    )


@dataclass(slots=True)
class _PromptRow:
    line: int
    external_id: str
    text: str
    context: list
    split: str
    metadata: dict
    # The row's columns (its dict's keys): optional ones it gave are compared with a stored row of the same id.
    given: Collection[str]


@dataclass(slots=True)
class _CandidateRow:
    line: int
    path: str  # where in the row, for messages: "" or "candidates[2]."
    external_id: str
    prompt_external_id: str
    text: str
    mime_type: str
    metadata: dict
    origin: dict
    given: Collection[str]
    media: str = ""  # the storage name its file will have (annotation.media, by content hash); "" for text
    media_file: tuple[str, MediaInfo] | None = None  # (the file's name in the upload, what media_check found)


@dataclass(slots=True)
class _ComparisonRow:
    line: int
    path: str
    external_id: str
    prompt_external_id: str
    candidate_external_ids: list[str]
    priority: int
    wanted: int | None
    gold: dict | None  # as in the file: candidate external ids
    given: Collection[str]


@dataclass(slots=True)
class _Rows:
    """One batch, parsed: what it holds of each table."""

    prompts: list[_PromptRow] = field(default_factory=list)
    candidates: list[_CandidateRow] = field(default_factory=list)
    comparisons: list[_ComparisonRow] = field(default_factory=list)

    def add(self, parsed) -> None:
        if isinstance(parsed, tuple):  # a bundle row: (prompt, candidates, comparisons)
            self.prompts.append(parsed[0])
            self.candidates.extend(parsed[1])
            self.comparisons.extend(parsed[2])
        elif isinstance(parsed, _PromptRow):
            self.prompts.append(parsed)
        elif isinstance(parsed, _CandidateRow):
            self.candidates.append(parsed)
        else:
            self.comparisons.append(parsed)


class _Seen:
    """External ids met so far in the file, with their line: ids must not repeat."""

    def __init__(self):
        self.ids = {"prompt": {}, "candidate": {}, "comparison": {}}

    def check(self, what: str, rows, err, field: str = "id") -> None:
        """Record the rows' ids; report each one met before (``field`` after the row's path)."""
        ids = self.ids[what]
        known = len(ids)
        for row in rows:
            first = ids.setdefault(row.external_id, row.line)
            if len(ids) > known:
                known += 1
                continue
            where = "earlier in this row" if first == row.line else f"also on line {first}"
            message = f"The {what} id {row.external_id!r} is {where}; ids must be unique in the project."
            err(f"{getattr(row, 'path', '')}{field}", message)


def _batch_parse(ctx: _Context, batch: list[tuple[int, dict]], errors: _Errors, seen: _Seen) -> _Rows:
    """Parse and check each row of a batch on its own; the rows without errors come back."""
    rows = _Rows()
    parse = {
        "prompts": _prompt_row,
        "candidates": _candidate_row,
        "comparisons": _comparison_row,
        "bundle": _bundle_row,
    }[ctx.kind]
    for line, raw in batch:
        failed = errors.count

        def err(field, message, line=line):
            errors.add(line, field, message)

        if isinstance(raw, _BadRow):
            err(raw.field, raw.message)
            continue
        bad_field = unstorable_field(raw)
        if bad_field is not None:
            err(bad_field, UNSTORABLE)
            continue
        parsed = parse(ctx, raw, line, err)
        if errors.count > failed or parsed is None:
            continue
        _seen_check(seen, parsed, err)
        if errors.count > failed:
            continue
        rows.add(parsed)
    return rows


def _seen_check(seen: _Seen, parsed, err) -> None:
    if isinstance(parsed, tuple):  # a bundle row
        prompts, candidates, comparisons = (parsed[0],), parsed[1], parsed[2]
    else:
        prompts = (parsed,) if isinstance(parsed, _PromptRow) else ()
        candidates = (parsed,) if isinstance(parsed, _CandidateRow) else ()
        comparisons = (parsed,) if isinstance(parsed, _ComparisonRow) else ()
    seen.check("prompt", prompts, err)
    seen.check("candidate", candidates, err)
    seen.check("comparison", comparisons, err)


class _BadRow(dict):
    """A row that could not be decoded; carries the reason to the parser."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__()
        self.message = message
        self.field = field


def _present(raw: dict) -> dict:
    """The row without its null values: a null is the same as a column left out."""
    return {k: v for k, v in raw.items() if v is not None} if None in raw.values() else raw


def _unknown_keys_check(raw: dict, allowed: frozenset, err, path: str = "") -> None:
    for key in raw.keys() - allowed:
        err(f"{path}{key}", f"Unknown column {key!r}; the columns are: {', '.join(sorted(allowed))}.")


_SPLITS = tuple(Split.values)


def _prompt_row(ctx: _Context, raw: dict, line: int, err) -> _PromptRow | None:
    if not raw.keys() <= ctx.column_set:
        _unknown_keys_check(raw, ctx.column_set, err)
    text = _text(raw, "text", err, required=True)
    context = _context_list(raw, err)
    split = raw.get("split", "train")
    if split not in _SPLITS:
        err("split", f"Unknown split {split!r}; use one of: {', '.join(_SPLITS)}.")
    metadata = _object(raw, "metadata", err)
    external_id = _external_id(raw, "id", err)
    if text is None or (external_id is None and "id" in raw):
        return None
    if external_id is None:
        external_id = _derived_id("p", json.dumps([text, context], ensure_ascii=False, sort_keys=True))
    return _PromptRow(line, external_id, text, context, split, metadata, raw.keys())


def _candidate_row(
    ctx: _Context, raw: dict, line: int, err, *, prompt_external_id: str | None = None, path: str = ""
) -> _CandidateRow | None:
    """A candidate: a row of a candidates file, or one of a bundle row's ``candidates``
    (then ``path`` locates it in the row and its prompt is the row's)."""
    allowed = _BUNDLE_CANDIDATE_KEYS if path else ctx.column_set
    if not raw.keys() <= allowed:
        _unknown_keys_check(raw, allowed, err, path)
    if prompt_external_id is None:
        prompt_external_id = _external_id(raw, "prompt_id", err, required=True)
    text_required = ctx.modality == Modality.TEXT
    text = _text(raw, "text", err, required=text_required, path=path)
    mime_type = raw.get("mime_type", "text/plain")
    if mime_type == "text/plain":
        pass
    elif not isinstance(mime_type, str) or "/" not in mime_type or len(mime_type) > 100:
        err(f"{path}mime_type", "Must be a MIME type such as text/plain or text/markdown.")
    elif text_required and not mime_type.startswith("text/"):
        err(f"{path}mime_type", "This is a text project: use text/plain or text/markdown.")
    metadata = _object(raw, "metadata", err, path)
    origin = _object(raw, "origin", err, path)
    external_id = _external_id(raw, "id", err, path=path)
    media_file = _media_file(ctx, raw, err, path) if "media" in raw else None
    if prompt_external_id is None or (text is None and text_required) or (external_id is None and "id" in raw):
        return None
    if "media" in raw and media_file is None:
        return None
    text = text or ""
    if media_file is None:
        if external_id is None:
            external_id = _derived_id("c", f"{prompt_external_id}\x1f{text}")
        return _CandidateRow(line, path, external_id, prompt_external_id, text, mime_type, metadata, origin, raw.keys())
    info = media_file[1]
    if "mime_type" in raw and mime_type != info.mime_type:
        message = f"The file {media_file[0]!r} is {info.mime_type} (read from its content), not {mime_type}."
        err(f"{path}mime_type", message)
        return None
    if external_id is None:
        external_id = _derived_id("c", f"{prompt_external_id}\x1f{text}\x1f{info.sha256}")
    return _CandidateRow(
        line,
        path,
        external_id,
        prompt_external_id,
        text,
        info.mime_type,
        metadata,
        origin,
        raw.keys(),
        info.storage_name,
        media_file,
    )


def _media_file(ctx: _Context, raw: dict, err, path: str) -> tuple[str, MediaInfo] | None:
    """A candidate's ``media``: the name of a file uploaded with the import, checked by annotation.media."""
    name = raw["media"]
    key = f"{path}media"
    if not isinstance(name, str) or not name.strip():
        err(key, f"Must be the name of a file in the upload, such as img/cat-1.png, not {_json_type(name)}.")
        return None
    if ctx.modality == Modality.TEXT:
        err(key, "This is a text project: its candidates are texts, not media files.")
        return None
    if ctx.media is None:
        err(
            key,
            "A media file comes in a zip beside this manifest (or as a file of a multipart upload); "
            "a plain import file cannot name one (files on the server are never read).",
        )
        return None
    try:
        return name, ctx.media.check(name)
    except MediaInvalid as exc:
        err(key, str(exc))
        return None


def _comparison_row(
    ctx: _Context, raw: dict, line: int, err, *, prompt_external_id: str | None = None, path: str = ""
) -> _ComparisonRow | None:
    """A comparison: a row of a comparisons file, or one listed in a bundle row's ``comparisons``."""
    allowed = _BUNDLE_COMPARISON_KEYS if path else ctx.column_set
    if not raw.keys() <= allowed:
        _unknown_keys_check(raw, allowed, err, path)
    if prompt_external_id is None:
        prompt_external_id = _external_id(raw, "prompt_id", err, required=True)
    candidate_ids = _id_list(raw.get("candidate_ids"), f"{path}candidate_ids", ctx.arity, err)
    priority = _int(raw, "priority", err, *PRIORITY_RANGE, path=path)
    wanted = _int(raw, "wanted", err, 1, 1_000_000, path=path)
    gold = raw.get("gold")
    if gold is not None:
        if "wanted" in raw:
            err(f"{path}wanted", "A gold check is served to every annotator once: leave 'wanted' out.")
        if candidate_ids is not None:
            _gold_check(gold, candidate_ids, ctx, err, f"{path}gold")
    external_id = _external_id(raw, "id", err, path=path)
    if prompt_external_id is None or candidate_ids is None or (external_id is None and "id" in raw):
        return None
    if external_id is None:
        external_id = comparison_external_id(prompt_external_id, candidate_ids)
    return _ComparisonRow(
        line, path, external_id, prompt_external_id, candidate_ids, priority or 0, wanted, gold, raw.keys()
    )


def _bundle_row(ctx: _Context, raw: dict, line: int, err):
    """A prompt, its candidates and the comparisons over them: ``(prompt, [candidates], [comparisons])``.

    ``comparisons`` is ``"pairs"`` or ``"groups"`` (built by
    annotation.comparisons.candidate_groups), a list of candidate-id lists (or of
    comparison objects, to give ids, gold answers, priorities), or absent: none.
    """
    prompt = _prompt_row(ctx, {k: v for k, v in raw.items() if k not in _BUNDLE_ONLY}, line, err)
    # Keep checking the rest of the row when the prompt is bad, to report every error at once.
    prompt_external_id = prompt.external_id if prompt is not None else ""
    raw_candidates = raw.get("candidates", [])
    if not isinstance(raw_candidates, list) or not all(isinstance(c, dict) for c in raw_candidates):
        err("candidates", 'Must be a list of objects: [{"id": ..., "text": ...}, ...].')
        return None
    candidates = [
        _candidate_row(ctx, _present(c), line, err, prompt_external_id=prompt_external_id, path=f"candidates[{i}].")
        for i, c in enumerate(raw_candidates)
    ]
    priority = _int(raw, "priority", err, *PRIORITY_RANGE)
    if prompt is None or None in candidates or ("priority" in raw and priority is None):
        return None

    mode = raw.get("comparisons", ctx.default_comparisons)
    if isinstance(mode, str):
        try:
            groups = candidate_groups([c.external_id for c in candidates], mode=mode, arity=ctx.arity)
        except BuildModeInvalid as exc:
            err("comparisons", f"{exc} Or give a list of candidate-id lists.")
            return None
        # Built from candidates checked above, so not checked again one by one.
        given = {"priority"} if priority is not None else set()
        comparisons = [
            _ComparisonRow(
                line,
                f"comparisons[{i}].",
                comparison_external_id(prompt_external_id, group),
                prompt_external_id,
                group,
                priority or 0,
                None,
                None,
                given,
            )
            for i, group in enumerate(groups)
        ]
        return prompt, candidates, comparisons
    if mode is None:
        return prompt, candidates, []
    if not isinstance(mode, list):
        err("comparisons", "Must be 'pairs', 'groups', a list of candidate-id lists, or left out.")
        return None
    specs = [_present(spec) if isinstance(spec, dict) else {"candidate_ids": spec} for spec in mode]
    if priority is not None:
        specs = [{"priority": priority, **spec} for spec in specs]  # a comparison's own priority wins
    comparisons = [
        _comparison_row(ctx, spec, line, err, prompt_external_id=prompt_external_id, path=f"comparisons[{i}].")
        for i, spec in enumerate(specs)
    ]
    if None in comparisons:
        return None
    return prompt, candidates, comparisons


def _derived_id(prefix: str, content: str) -> str:
    return f"{prefix}-{hashlib.sha256(content.encode()).hexdigest()[:24]}"


def _external_id(raw: dict, key: str, err, *, required: bool = False, path: str = "") -> str | None:
    value = raw.get(key)
    if type(value) is str and 0 < len(value) <= MAX_EXTERNAL_ID and value.isascii() and _ordinary(value):
        return value  # the common case, in fewer steps: the checks below would pass
    if value is None:
        if required:
            err(f"{path}{key}", "Required.")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        err(f"{path}{key}", f"Must be a string (or a whole number), not {_json_type(value)}.")
        return None
    value = str(value)
    if not value.strip() or len(value) > MAX_EXTERNAL_ID or not _storable_text(value):
        err(f"{path}{key}", f"Must be 1 to {MAX_EXTERNAL_ID} characters (no NUL).")
        return None
    return value


def _text(raw: dict, key: str, err, *, required: bool, path: str = "") -> str | None:
    value = raw.get(key)
    if type(value) is str and value.isascii() and _ordinary(value):
        return value  # the common case, in fewer steps: the checks below would pass
    if value is None:
        if required:
            err(f"{path}{key}", "Required: the text must not be empty.")
        return None
    if not isinstance(value, str):
        err(f"{path}{key}", f"Must be a string, not {_json_type(value)}.")
        return None
    if required and not value.strip():
        err(f"{path}{key}", "Required: the text must not be empty.")
        return None
    if not _storable_text(value):
        err(f"{path}{key}", UNSTORABLE)
        return None
    return value


def _ordinary(text: str) -> bool:
    """Not blank and no NUL: with ``isascii()``, a text every check here passes."""
    return "\x00" not in text and not text.isspace() and text != ""


def _object(raw: dict, key: str, err, path: str = "") -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        err(f"{path}{key}", f"Must be a JSON object, not {_json_type(value)}.")
        return {}
    return value


def _int(raw: dict, key: str, err, lo: int, hi: int, path: str = "") -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        err(f"{path}{key}", f"Must be a whole number from {lo} to {hi}.")
        return None
    return value


def _context_list(raw: dict, err) -> list:
    value = raw.get("context")
    if value is None:
        return []
    ok = isinstance(value, list) and all(
        isinstance(turn, dict)
        and set(turn) == {"role", "content"}
        and turn["role"] in CONTEXT_ROLES
        and isinstance(turn["content"], str)
        for turn in value
    )
    if not ok:
        err("context", 'Must be a list of {"role": "system" | "user" | "assistant", "content": "..."} turns.')
        return []
    return value


def _id_list(value, key: str, arity: int, err) -> list[str] | None:
    if value is None:
        err(key, "Required: a list of candidate ids.")
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        err(key, "Must be a list of candidate ids.")
        return None
    ids = [str(v) for v in value]
    if len(ids) != arity:
        err(key, f"Has {len(ids)} candidates; this project compares {arity} at a time (its schema's arity).")
        return None
    if len(set(ids)) != len(ids):
        err(key, "Lists a candidate twice.")
        return None
    return ids


def _gold_check(gold, candidate_ids: list[str], ctx: _Context, err, key: str) -> None:
    """The expected answer of a gold check, in candidate external ids; same rules as a judgment."""
    if not isinstance(gold, dict) or len(gold) != 1 or next(iter(gold)) not in ("winner", "tie", "ranking"):
        err(key, 'Must be one of {"winner": candidate id}, {"tie": true} or {"ranking": [candidate ids, best first]}.')
        return
    if "winner" in gold and str(gold["winner"]) not in candidate_ids:
        err(key, f"The winner {gold['winner']!r} is not one of this comparison's candidates {candidate_ids}.")
    if "tie" in gold and (gold["tie"] is not True or not ctx.allow_tie):
        err(key, 'A tie must be written {"tie": true}, and the project must allow ties.')
    if "ranking" in gold and (
        not isinstance(gold["ranking"], list) or sorted(map(str, gold["ranking"])) != sorted(candidate_ids)
    ):
        err(key, f"The ranking must list every candidate exactly once, best first: {candidate_ids}.")


def _json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
