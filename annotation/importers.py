"""Import prompts, candidates and comparisons from JSON Lines, CSV or Parquet files.

One core (:func:`_import`) serves the background job (:func:`import_job_run`) and
the synchronous path (:func:`import_file`, used by ``manage.py import_data`` and
the benchmarks). It runs in three phases:

1. **reading**: count the rows (for progress).
2. **validating**: read every row, check it on its own (types, required fields,
   ids) and, a batch at a time, against the database (unknown prompt, candidate of
   another prompt, an id that exists with different content). Every bad row is
   reported and nothing is written. Each batch's plan (its new rows, and the keys
   of stored rows they refer to) goes to a temporary file.
3. **writing**: only when no row failed, write the plans inside ONE transaction:
   all or nothing. On Postgres rows go in with ``COPY``, their primary keys drawn
   from the sequences first; elsewhere with ``bulk_create``. Then ``ANALYZE``
   (Postgres here runs without autovacuum).

A rejected file never opens a write transaction, and no more than one batch of
parsed rows is in memory at a time.

Line numbers in errors are 1-based: the line of the file for JSON Lines (blank
lines count as lines but are skipped), the data row for CSV and Parquet (the
header is not counted: the first data row is line 1).

Re-importing is idempotent on external ids (unique per project): a row equal to
the stored one counts as ``unchanged``. A row whose id exists with different
content is an error. Optional columns a row leaves out are not compared.
Rows without an ``id`` get one derived from a hash of their content, so the
same file imported twice finds its own rows.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import json
import logging
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.models import JSONField, Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from .comparisons import GOLD_WANTED, BuildModeInvalid, candidate_groups, comparison_external_id
from .models import (
    Candidate,
    CandidateSource,
    Comparison,
    ComparisonCandidate,
    ImportJob,
    ImportStatus,
    Modality,
    Project,
    Prompt,
    Split,
)
from .schema import SchemaError, parse_schema

logger = logging.getLogger(__name__)

IMPORT_KINDS = ("prompts", "candidates", "comparisons", "bundle")
IMPORT_FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
IMPORT_OPTIONS = ("comparisons",)  # bundle: how to build comparisons for rows that have no `comparisons` column

MAX_ERRORS = 1000  # errors kept on a job; the rest are counted
BATCH_ROWS = 2000  # file rows checked and written together (one lookup query per table per batch)
LOOKUP_CHUNK = 5000  # ids per "IN (...)" list: well under SQLite's limit of 32,766 parameters
ANALYZE_MIN_ROWS = 1000  # refresh planner statistics after imports this large: Postgres runs without autovacuum
# A job still "running" this long after it started lost its worker (the Celery task's
# time limit is 4 h), so a redelivered message may run it again.
STALE_RUNNING_AFTER = timedelta(hours=4, minutes=10)
MAX_EXTERNAL_ID = 255
PRIORITY_RANGE = (-1_000_000, 1_000_000)
CONTEXT_ROLES = ("system", "user", "assistant")

Progress = Callable[[str, int, "int | None"], None]  # (phase, rows done, rows total)


class ImportRejected(ValueError):
    """The file cannot be imported; nothing was written.

    ``errors`` is a list of ``{"line": int | None, "field": str | None, "message": str}``
    (``line`` None: the whole file), capped at :data:`MAX_ERRORS` with a last entry
    saying how many more there were.
    """

    def __init__(self, errors: list[dict], message: str | None = None):
        self.errors = errors
        self.message = message or (errors[0]["message"] if len(errors) == 1 else f"{len(errors)} errors")
        super().__init__(self.message)


# --- Services ------------------------------------------------------------------------------


def import_job_create(
    *,
    project: Project,
    kind: str,
    uploaded_file,
    original_name: str,
    file_format: str | None = None,
    options: dict | None = None,
    created_by=None,
) -> ImportJob:
    """Store an uploaded file as a queued import job; raise :class:`ImportRejected` for a
    bad kind, format or option. The format is taken from the file name when not given."""
    file_format = _kind_format_check(kind, file_format, original_name)
    options = _options_check(options)
    job = ImportJob(
        project=project,
        kind=kind,
        file_format=file_format,
        original_name=original_name[:255],
        options=options,
        created_by=created_by,
    )
    name = get_valid_filename(Path(original_name).name) or f"import.{file_format}"
    job.file.save(name, uploaded_file if isinstance(uploaded_file, File) else File(uploaded_file), save=False)
    job.save()
    return job


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a queued job and return it, finished (succeeded or failed).

    Claimed with a conditional update, so a redelivered message does not run a job
    twice; a job that is already finished (or running elsewhere) is returned as it is.
    Bad data never raises: it fails the job with its row errors. An unexpected
    exception fails the job with a message and is re-raised.
    """
    now = timezone.now()
    claimable = Q(status=ImportStatus.QUEUED) | Q(status=ImportStatus.RUNNING, started_at__lt=now - STALE_RUNNING_AFTER)
    claimed = ImportJob.objects.filter(claimable, pk=job_id).update(
        status=ImportStatus.RUNNING, started_at=now, finished_at=None, phase="", rows_done=0, errors=[], message=""
    )
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        return job
    progress = _JobProgress(job.pk)
    try:
        with _job_file_path(job) as path:
            counts = _import(
                project=job.project,
                kind=job.kind,
                path=path,
                file_format=job.file_format,
                options=job.options,
                progress=progress,
            )
    except ImportRejected as exc:
        _job_finish(job.pk, ImportStatus.FAILED, errors=exc.errors, message=exc.message)
    except Exception as exc:
        _job_finish(job.pk, ImportStatus.FAILED, message=f"The import stopped on an unexpected error: {exc}")
        raise
    else:
        _job_finish(
            job.pk,
            ImportStatus.SUCCEEDED,
            result=counts,
            message=_counts_summary(counts),
            phase="done",
            rows_done=progress.rows_total or 0,
        )
    finally:
        progress.close()
    job.refresh_from_db()
    return job


def import_file(
    *,
    project: Project,
    kind: str,
    path,
    file_format: str | None = None,
    options: dict | None = None,
    progress: Progress | None = None,
) -> dict:
    """Import a local file at once; returns the counts, e.g.
    ``{"prompts": {"created": 2, "unchanged": 0}, "candidates": {...}, "comparisons": {...}}``.
    Raises :class:`ImportRejected` (nothing written) when any row is bad."""
    file_format = _kind_format_check(kind, file_format, str(path))
    return _import(
        project=project,
        kind=kind,
        path=Path(path),
        file_format=file_format,
        options=_options_check(options),
        progress=progress,
    )


def _kind_format_check(kind: str, file_format: str | None, name: str) -> str:
    if kind not in IMPORT_KINDS:
        raise _rejected(f"Unknown import kind {kind!r}; use one of: {', '.join(IMPORT_KINDS)}.", field="kind")
    if file_format is None:
        file_format = _EXTENSIONS.get(Path(name).suffix.lower())
        if file_format is None:
            raise _rejected(
                f"Cannot tell the format from the file name {Path(name).name!r}: name it .jsonl, .csv or "
                f".parquet, or give the format ({', '.join(IMPORT_FORMATS)}).",
                field="file_format",
            )
    if file_format not in IMPORT_FORMATS:
        raise _rejected(
            f"Unknown file format {file_format!r}; use one of: {', '.join(IMPORT_FORMATS)}.", field="file_format"
        )
    return file_format


def _options_check(options: dict | None) -> dict:
    options = dict(options or {})
    for key in options:
        if key not in IMPORT_OPTIONS:
            raise _rejected(f"Unknown option {key!r}; known options: {', '.join(IMPORT_OPTIONS)}.", field="options")
    if options.get("comparisons") not in (None, "pairs", "groups"):
        raise _rejected("Option 'comparisons' must be 'pairs', 'groups' or null.", field="options")
    return options


def _rejected(message: str, *, field: str | None = None) -> ImportRejected:
    return ImportRejected([{"line": None, "field": field, "message": message}])


def _counts_summary(counts: dict) -> str:
    parts = [f"{name}: {c['created']} created, {c['unchanged']} unchanged" for name, c in counts.items()]
    return "Imported. " + "; ".join(parts) + "."


class _JobProgress:
    """Writes an import's progress to its job row, visible while the import runs.

    While the write transaction is open, the job row is updated through a second
    connection (Postgres), since an update on the importing connection would only
    show at commit. SQLite has one writer at a time, so there the writing phase
    reports only at its start and end.
    """

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.rows_total: int | None = None
        self._side = None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        self.rows_total = total
        fields = {"phase": phase, "rows_done": done, "rows_total": total}
        if phase != "writing" or done == 0:
            ImportJob.objects.filter(pk=self.job_id).update(**fields)
        elif connection.vendor == "postgresql":
            if self._side is None:
                # Same settings as the importing connection; autocommit, so each update shows at once.
                self._side = connections.create_connection(DEFAULT_DB_ALIAS)
            with self._side.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {ImportJob._meta.db_table} SET phase = %s, rows_done = %s, rows_total = %s WHERE id = %s",
                    [phase, done, total, self.job_id],
                )

    def close(self) -> None:
        if self._side is not None:
            self._side.close()


def _job_finish(job_id: int, status: str, **fields) -> None:
    ImportJob.objects.filter(pk=job_id).update(status=status, finished_at=timezone.now(), **fields)


@contextlib.contextmanager
def _job_file_path(job: ImportJob) -> Iterator[Path]:
    """A local path to the job's file: the file itself on local storage, else a
    temporary copy (the importer reads the file twice and Parquet needs to seek)."""
    try:
        local = Path(job.file.path)
    except NotImplementedError:  # remote storage (S3): no local path
        local = None
    if local is not None:
        yield local
        return
    suffix = Path(job.file.name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with default_storage.open(job.file.name, "rb") as source:
            shutil.copyfileobj(source, tmp, length=1024 * 1024)
        tmp.flush()
        yield Path(tmp.name)


# --- The core --------------------------------------------------------------------------------


def _import(*, project: Project, kind: str, path: Path, file_format: str, options: dict, progress) -> dict:
    progress = progress or (lambda phase, done, total: None)
    ctx = _context(project, kind, options)

    progress("reading", 0, None)
    rows_total = _rows_count(path, file_format)
    # The validating pass leaves each batch's plan (new rows, stored keys) in this
    # file, so the writing pass need not read and check the file a second time.
    with tempfile.TemporaryFile(prefix="tandem-import-") as plans:
        _validate(ctx, path, file_format, rows_total, progress, plans)
        progress("writing", 0, rows_total)
        plans.seek(0)
        try:
            with transaction.atomic():
                counts = _write(ctx, plans, rows_total, progress)
        except IntegrityError as exc:
            # Validation saw these rows free and their references alive: something
            # (another import, a deletion) changed the project in between.
            raise _rejected(
                "The project changed while this import ran (another import of the same ids, or a deletion); "
                f"nothing was imported. Run it again: imports are idempotent. Database said: {exc}"
            ) from exc
    if sum(c["created"] for c in counts.values()) >= ANALYZE_MIN_ROWS:
        _analyze()
    return counts


def _validate(ctx: _Context, path: Path, file_format: str, rows_total: int, progress, plans) -> None:
    """Check every row; raise :class:`ImportRejected` with all errors, or leave the
    batches' plans in ``plans``."""
    errors = _Errors()
    seen = _Seen()
    done = 0
    for batch in _batches(_rows_read(path, file_format, ctx), errors):
        rows = _batch_parse(ctx, batch, errors, seen)
        plan = _batch_plan(ctx, rows, errors)
        if not errors.count:
            # Our own temporary file, read back by this same call: not untrusted data.
            pickle.dump((len(batch), plan), plans, protocol=pickle.HIGHEST_PROTOCOL)
        done += len(batch)
        progress("validating", done, rows_total)
    if done == 0 and not errors.count:
        raise _rejected("The file has no rows.")
    if errors.count:
        rows_bad = len({e["line"] for e in errors.items})
        raise ImportRejected(
            errors.as_list(),
            f"Nothing was imported: {errors.count} error(s) on {rows_bad}{'+' if errors.capped else ''} row(s). "
            "Fix them and upload the file again.",
        )


def _write(ctx: _Context, plans, rows_total: int, progress) -> dict:
    counts = {name: {"created": 0, "unchanged": 0} for name in _COUNTED[ctx.kind]}
    done = 0
    while True:
        try:
            batch_size, plan = pickle.load(plans)  # noqa: S301 - written by _validate just before
        except EOFError:
            break
        _plan_write(ctx, plan)
        for name in counts:
            counts[name]["created"] += len(getattr(plan, f"new_{name}"))
            counts[name]["unchanged"] += plan.unchanged[name]
        done += batch_size
        progress("writing", done, rows_total)
    return counts


_COUNTED = {
    "prompts": ("prompts",),
    "candidates": ("candidates",),
    "comparisons": ("comparisons",),
    "bundle": ("prompts", "candidates", "comparisons"),
}


def _analyze() -> None:
    if connection.vendor != "postgresql":
        return
    tables = [m._meta.db_table for m in (Prompt, Candidate, Comparison, ComparisonCandidate)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(tables))


class _Errors:
    def __init__(self):
        self.items: list[dict] = []
        self.count = 0

    @property
    def capped(self) -> bool:
        return self.count > len(self.items)

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"line": line, "field": field, "message": message})

    def as_list(self) -> list[dict]:
        """The errors by line (file-level ones first); a batch's database checks come
        after its rows' own checks, so they are sorted here."""
        items = sorted(self.items, key=lambda e: -1 if e["line"] is None else e["line"])
        if self.capped:
            more = self.count - len(self.items)
            items.append({"line": None, "field": None, "message": f"... and {more} more error(s) not shown."})
        return items


# --- Reading files ---------------------------------------------------------------------------


class _FileUnreadable(Exception):
    """The file as a whole is not what it claims to be; one clear message, no rows."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(message)


def _rows_count(path: Path, file_format: str) -> int:
    try:
        if file_format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if file_format == "csv":
            with _csv_open(path) as f:
                return max(sum(1 for _ in csv.reader(f)) - 1, 0)
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except Exception as exc:  # the reading pass names the problem precisely
        logger.info("Could not count the rows of %s: %s", path, exc)
        return 0


def _batches(rows: Iterator[tuple[int, dict]], errors: _Errors) -> Iterator[list[tuple[int, dict]]]:
    batch = []
    try:
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                yield batch
                batch = []
    except _FileUnreadable as exc:
        errors.add(None, exc.field, exc.message)
        raise ImportRejected(errors.as_list(), exc.message) from exc
    if batch:
        yield batch


def _rows_read(path: Path, file_format: str, ctx: _Context) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, row)`` with the row's values decoded (JSON columns of CSV parsed);
    a file-level problem raises :class:`_FileUnreadable`."""
    reader = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}[file_format]
    return reader(path, ctx)


def _jsonl_rows(path: Path, ctx: _Context) -> Iterator[tuple[int, dict]]:
    with open(path, "rb") as f:
        first = True
        for line_no, line in enumerate(f, 1):
            if line_no == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                if first:
                    raise _FileUnreadable(
                        f"This is not a JSON Lines file: line {line_no} is not valid JSON ({exc}). "
                        "Each line must hold one JSON object."
                    ) from exc
                yield line_no, _BadRow(f"Not valid JSON: {exc}.")
                continue
            if first and not isinstance(row, dict):
                raise _FileUnreadable(
                    f"This is not a JSON Lines file: line {line_no} is a JSON {type(row).__name__}, not an object. "
                    "Each line must hold one JSON object (a JSON array is not JSON Lines)."
                )
            first = False
            yield line_no, _present(row) if isinstance(row, dict) else _BadRow("Must be a JSON object.")


class _BadRow(dict):
    """A row that could not be decoded; carries the reason to the parser."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__()
        self.message = message
        self.field = field


@contextlib.contextmanager
def _csv_open(path: Path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        yield f


def _csv_rows(path: Path, ctx: _Context) -> Iterator[tuple[int, dict]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts; the default is 128 KiB a cell
    try:
        with _csv_open(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise _FileUnreadable("The file is empty: a CSV file needs a header row naming its columns.")
            header = [h.strip() for h in header]
            _header_check(header, ctx)
            width = len(header)
            for line_no, cells in enumerate(reader, 1):
                if not any(cells):
                    continue
                if len(cells) > width:
                    yield line_no, _BadRow(f"Has {len(cells)} cells but the header names {width} columns.")
                    continue
                yield line_no, _csv_decode(dict(zip(header, cells, strict=False)), ctx)
    except UnicodeDecodeError as exc:
        raise _FileUnreadable(f"This is not a CSV file in UTF-8 text: {exc}.") from exc
    except csv.Error as exc:
        raise _FileUnreadable(f"This is not a valid CSV file: {exc}.") from exc


def _csv_decode(cells: dict[str, str], ctx: _Context) -> dict:
    """CSV cells are text: parse the JSON and integer columns; an empty cell is a missing value."""
    row = {}
    for key, value in cells.items():
        if value == "":
            continue
        kind = ctx.columns.get(key)
        if kind == "json" or (kind == "json_or_mode" and value.strip() not in ("pairs", "groups")):
            try:
                row[key] = json.loads(value)
            except ValueError as exc:
                return _BadRow(f"Not valid JSON: {exc}.", field=key)
        elif kind == "int":
            try:
                row[key] = int(value)
            except ValueError:
                return _BadRow(f"Must be a whole number, not {value!r}.", field=key)
        else:
            row[key] = value.strip() if kind == "json_or_mode" else value
    return row


def _parquet_rows(path: Path, ctx: _Context) -> Iterator[tuple[int, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _FileUnreadable(f"This is not a Parquet file, or it is truncated: {exc}.") from exc
    _header_check(parquet.schema_arrow.names, ctx)
    line_no = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for row in record_batch.to_pylist():
                line_no += 1
                yield line_no, _parquet_decode(row, ctx)
    except (pa.ArrowException, OSError) as exc:
        raise _FileUnreadable(f"The Parquet file is damaged after row {line_no}: {exc}.") from exc


def _parquet_decode(row: dict, ctx: _Context) -> dict:
    """Parquet values are typed; nested columns may also be JSON strings (as in CSV)."""
    row = _present(row)
    for key, value in row.items():
        kind = ctx.columns.get(key)
        if not isinstance(value, str):
            continue
        if kind == "json" or (kind == "json_or_mode" and value not in ("pairs", "groups")):
            try:
                row[key] = json.loads(value)
            except ValueError as exc:
                return _BadRow(f"Not valid JSON: {exc}.", field=key)
        elif kind == "int":
            try:
                row[key] = int(value)
            except ValueError:
                return _BadRow(f"Must be a whole number, not {value!r}.", field=key)
    return row


def _header_check(names: list[str], ctx: _Context) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _FileUnreadable(f"The header names these columns twice: {', '.join(duplicates)}.")
    unknown = [n for n in names if n not in ctx.columns]
    if unknown:
        raise _FileUnreadable(
            f"Unknown column(s) {', '.join(map(repr, unknown))} for a {ctx.kind} import; "
            f"the columns are: {', '.join(ctx.columns)}.",
            field=unknown[0],
        )
    missing = [n for n in ctx.required if n not in names]
    if missing:
        raise _FileUnreadable(f"Missing required column(s): {', '.join(map(repr, missing))}.", field=missing[0])


# --- Parsing rows (no database) -----------------------------------------------------------------

_PROMPT_COLUMNS = {"id": "id", "text": "str", "context": "json", "split": "str", "metadata": "json"}
_CANDIDATE_COLUMNS = {
    "id": "id",
    "prompt_id": "id",
    "text": "str",
    "mime_type": "str",
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
_BUNDLE_CANDIDATE_KEYS = frozenset(("id", "text", "mime_type", "metadata", "origin"))
_BUNDLE_COMPARISON_KEYS = frozenset(("id", "candidate_ids", "priority", "wanted", "gold"))
_BUNDLE_ONLY = frozenset(("candidates", "comparisons", "priority"))


@dataclass(frozen=True)
class _Context:
    kind: str
    project_id: int
    modality: str
    arity: int
    allow_tie: bool
    overlap: int
    default_comparisons: str | None
    columns: dict[str, str]  # name → "id" | "str" | "int" | "json" | "json_or_mode"
    column_set: frozenset
    required: tuple[str, ...]


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
    given: set  # optional columns the row gave: compared with a stored row of the same id


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
    given: set


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
    given: set


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

    def check(self, what: str, external_id: str, line: int, err, field: str) -> None:
        ids = self.ids[what]
        first = ids.get(external_id)
        if first is None:
            ids[external_id] = line
        else:
            where = "earlier in this row" if first == line else f"also on line {first}"
            err(field, f"The {what} id {external_id!r} is {where}; ids must be unique in the project.")


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
        parsed = parse(ctx, raw, line, err)
        if errors.count > failed or parsed is None:
            continue
        _seen_check(seen, parsed, err)
        if errors.count > failed:
            continue
        rows.add(parsed)
    return rows


def _seen_check(seen: _Seen, parsed, err) -> None:
    one = _Rows()
    one.add(parsed)
    for p in one.prompts:
        seen.check("prompt", p.external_id, p.line, err, "id")
    for c in one.candidates:
        seen.check("candidate", c.external_id, c.line, err, f"{c.path}id")
    for m in one.comparisons:
        seen.check("comparison", m.external_id, m.line, err, f"{m.path}id")


def _present(raw: dict) -> dict:
    """The row without its null values: a null is the same as a column left out."""
    return {k: v for k, v in raw.items() if v is not None} if None in raw.values() else raw


def _unknown_keys_check(raw: dict, allowed: frozenset, err, path: str = "") -> None:
    if raw.keys() <= allowed:
        return
    for key in raw.keys() - allowed:
        err(f"{path}{key}", f"Unknown column {key!r}; the columns are: {', '.join(sorted(allowed))}.")


_SPLITS = tuple(Split.values)
_PROMPT_COMPARED = frozenset(("context", "split", "metadata"))  # optional columns compared on re-import
_CANDIDATE_COMPARED = frozenset(("mime_type", "metadata", "origin"))
_COMPARISON_COMPARED = frozenset(("priority", "wanted"))


def _prompt_row(ctx: _Context, raw: dict, line: int, err) -> _PromptRow | None:
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
    return _PromptRow(line, external_id, text, context, split, metadata, raw.keys() & _PROMPT_COMPARED)


def _candidate_row(
    ctx: _Context, raw: dict, line: int, err, *, prompt_external_id: str | None = None, path: str = ""
) -> _CandidateRow | None:
    """A candidate: a row of a candidates file, or one of a bundle row's ``candidates``
    (then ``path`` locates it in the row and its prompt is the row's)."""
    _unknown_keys_check(raw, _BUNDLE_CANDIDATE_KEYS if path else ctx.column_set, err, path)
    if prompt_external_id is None:
        prompt_external_id = _external_id(raw, "prompt_id", err, required=True)
    text_required = ctx.modality == Modality.TEXT
    text = _text(raw, "text", err, required=text_required, path=path)
    mime_type = raw.get("mime_type", "text/plain")
    if not isinstance(mime_type, str) or "/" not in mime_type or len(mime_type) > 100:
        err(f"{path}mime_type", "Must be a MIME type such as text/plain or text/markdown.")
    elif text_required and not mime_type.startswith("text/"):
        err(f"{path}mime_type", "This is a text project: use text/plain or text/markdown.")
    metadata = _object(raw, "metadata", err, path)
    origin = _object(raw, "origin", err, path)
    external_id = _external_id(raw, "id", err, path=path)
    if prompt_external_id is None or (text is None and text_required) or (external_id is None and "id" in raw):
        return None
    text = text or ""
    if external_id is None:
        external_id = _derived_id("c", f"{prompt_external_id}\x1f{text}")
    return _CandidateRow(
        line, path, external_id, prompt_external_id, text, mime_type, metadata, origin, raw.keys() & _CANDIDATE_COMPARED
    )


def _comparison_row(
    ctx: _Context, raw: dict, line: int, err, *, prompt_external_id: str | None = None, path: str = ""
) -> _ComparisonRow | None:
    """A comparison: a row of a comparisons file, or one listed in a bundle row's ``comparisons``."""
    _unknown_keys_check(raw, _BUNDLE_COMPARISON_KEYS if path else ctx.column_set, err, path)
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
    given = raw.keys() & _COMPARISON_COMPARED
    return _ComparisonRow(
        line, path, external_id, prompt_external_id, candidate_ids, priority or 0, wanted, gold, given
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
    if value is None:
        if required:
            err(f"{path}{key}", "Required.")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        err(f"{path}{key}", f"Must be a string (or a whole number), not {_json_type(value)}.")
        return None
    value = str(value)
    if not value.strip() or len(value) > MAX_EXTERNAL_ID or not _storable(value):
        err(f"{path}{key}", f"Must be 1 to {MAX_EXTERNAL_ID} characters (no NUL).")
        return None
    return value


def _text(raw: dict, key: str, err, *, required: bool, path: str = "") -> str | None:
    value = raw.get(key)
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
    if not _storable(value):
        err(f"{path}{key}", "Holds a NUL character or a lone surrogate (\\u0000, \\ud800…), which cannot be stored.")
        return None
    return value


def _storable(text: str) -> bool:
    """Databases store neither NUL characters nor unpaired surrogates (JSON can hold both)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


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


# --- Checking a batch against the database ---------------------------------------------------------


@dataclass
class _Plan:
    """What a batch writes: new rows as plain tuples (cheap to keep in the plans
    file), and the primary keys of stored rows they refer to."""

    # (external_id, text, context, metadata, split)
    new_prompts: list[tuple] = field(default_factory=list)
    # (prompt external id, external_id, text, mime_type, origin, metadata)
    new_candidates: list[tuple] = field(default_factory=list)
    # (prompt external id, external_id, [candidate external ids], priority, wanted, gold in external ids)
    new_comparisons: list[tuple] = field(default_factory=list)
    prompt_pks: dict[str, int] = field(default_factory=dict)
    candidate_pks: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=lambda: {"prompts": 0, "candidates": 0, "comparisons": 0})


def _batch_plan(ctx: _Context, rows: _Rows, errors: _Errors) -> _Plan:
    """Check a parsed batch against the stored rows (one query per table) and decide
    what to write; row errors go to ``errors``."""
    plan = _Plan()
    prompts_stored = _stored(
        Prompt,
        ctx,
        {p.external_id for p in rows.prompts}
        | {c.prompt_external_id for c in rows.candidates}
        | {m.prompt_external_id for m in rows.comparisons},
        ("pk", "text", "context", "split", "metadata"),
    )
    plan.prompt_pks = {ext: stored[0] for ext, stored in prompts_stored.items()}
    for p in rows.prompts:
        stored = prompts_stored.get(p.external_id)
        if stored is None:
            plan.new_prompts.append((p.external_id, p.text, p.context, p.metadata, p.split))
            continue
        different = _differences(p, ("text", "context", "split", "metadata"), stored[1:], always=("text",))
        if different:
            errors.add(p.line, "id", f"The prompt {p.external_id!r} already exists with a different {different}.")
        else:
            plan.unchanged["prompts"] += 1
    batch_prompts = {p.external_id for p in rows.prompts}

    candidates_stored = _stored(
        Candidate,
        ctx,
        {c.external_id for c in rows.candidates},
        ("pk", "prompt_id", "text", "mime_type", "metadata", "origin"),
    )
    for c in rows.candidates:
        prompt_pk = plan.prompt_pks.get(c.prompt_external_id)
        if prompt_pk is None and c.prompt_external_id not in batch_prompts:
            errors.add(c.line, "prompt_id", f"Unknown prompt {c.prompt_external_id!r}: import the prompt first.")
            continue
        stored = candidates_stored.get(c.external_id)
        if stored is None:
            plan.new_candidates.append((c.prompt_external_id, c.external_id, c.text, c.mime_type, c.origin, c.metadata))
            continue
        if stored[1] != prompt_pk:
            errors.add(c.line, f"{c.path}id", f"The candidate {c.external_id!r} already exists for another prompt.")
            continue
        different = _differences(c, ("text", "mime_type", "metadata", "origin"), stored[2:], always=("text",))
        if different:
            errors.add(
                c.line, f"{c.path}id", f"The candidate {c.external_id!r} already exists with a different {different}."
            )
        else:
            plan.unchanged["candidates"] += 1
    plan.candidate_pks = {ext: stored[0] for ext, stored in candidates_stored.items()}

    if rows.comparisons:
        _comparisons_plan(ctx, rows, plan, errors, batch_prompts)
    return plan


def _comparisons_plan(ctx: _Context, rows: _Rows, plan: _Plan, errors: _Errors, batch_prompts: set[str]) -> None:
    # Who owns each candidate: a candidate of this batch names its prompt's external
    # id; a stored one, its prompt's primary key.
    owners: dict[str, str | int] = {c.external_id: c.prompt_external_id for c in rows.candidates}
    referenced = {ext for m in rows.comparisons for ext in m.candidate_external_ids} - owners.keys()
    for ext, (pk, prompt_id) in _stored(Candidate, ctx, referenced, ("pk", "prompt_id")).items():
        plan.candidate_pks[ext] = pk
        owners[ext] = prompt_id
    comparisons_stored = _stored(
        Comparison,
        ctx,
        {m.external_id for m in rows.comparisons},
        ("pk", "prompt_id", "candidate_ids", "priority", "wanted", "is_gold", "gold_answer"),
    )
    for m in rows.comparisons:
        prompt_pk = plan.prompt_pks.get(m.prompt_external_id)
        if prompt_pk is None and m.prompt_external_id not in batch_prompts:
            errors.add(m.line, "prompt_id", f"Unknown prompt {m.prompt_external_id!r}: import the prompt first.")
            continue
        unknown = [ext for ext in m.candidate_external_ids if ext not in owners]
        foreign = [
            ext for ext in m.candidate_external_ids if owners.get(ext) not in (None, m.prompt_external_id, prompt_pk)
        ]
        if unknown:
            errors.add(m.line, f"{m.path}candidate_ids", f"Unknown candidate(s): {', '.join(map(repr, unknown))}.")
        if foreign:
            errors.add(
                m.line,
                f"{m.path}candidate_ids",
                f"Candidate(s) of another prompt, not of {m.prompt_external_id!r}: {', '.join(map(repr, foreign))}.",
            )
        if unknown or foreign:
            continue
        stored = comparisons_stored.get(m.external_id)
        if stored is None:
            plan.new_comparisons.append(
                (m.prompt_external_id, m.external_id, m.candidate_external_ids, m.priority, m.wanted, m.gold)
            )
            continue
        pks = [plan.candidate_pks.get(ext) for ext in m.candidate_external_ids]
        is_gold, gold_answer = _gold_answer(m.gold, plan.candidate_pks)
        different = [
            name
            for name, same in (
                ("prompt", stored[1] == prompt_pk),
                ("candidates", stored[2] == pks),
                ("priority", "priority" not in m.given or stored[3] == m.priority),
                ("wanted", "wanted" not in m.given or stored[4] == m.wanted),
                ("gold answer", (stored[5], stored[6]) == (is_gold, gold_answer)),
            )
            if not same
        ]
        if different:
            errors.add(
                m.line,
                f"{m.path}id" if m.path or ctx.kind != "bundle" else "comparisons",
                f"The comparison {m.external_id!r} already exists with different {', '.join(different)}.",
            )
        else:
            plan.unchanged["comparisons"] += 1


def _gold_answer(gold: dict | None, candidate_pks: dict[str, int]) -> tuple[bool, dict | None]:
    """A gold answer in candidate external ids → ``(is_gold, answer in candidate primary keys)``."""
    if gold is None:
        return False, None
    if "winner" in gold:
        return True, {"winner": candidate_pks.get(str(gold["winner"]))}
    if "ranking" in gold:
        return True, {"ranking": [candidate_pks.get(str(ext)) for ext in gold["ranking"]]}
    return True, {"tie": True}


def _differences(row, names: tuple[str, ...], stored: tuple, *, always: tuple[str, ...]) -> str:
    different = [
        name
        for name, value in zip(names, stored, strict=True)
        if (name in always or name in row.given) and getattr(row, name) != value
    ]
    return ", ".join(different)


def _stored(model, ctx: _Context, external_ids: set[str], names: tuple[str, ...]) -> dict[str, tuple]:
    """Stored rows of the project by external id: ``{external_id: (values of names...)}``.

    Raw SQL: on Postgres the ids travel as one array literal (``= ANY('{...}')``),
    which the planner sees whole, as with ``IN (...)``; the ORM's list of thousands
    of parameters, or psycopg's adaptation of a list, costs more to build on the
    client than the query costs to run.
    """
    if not external_ids:
        return {}
    meta = model._meta
    fields = [meta.get_field("external_id"), *(meta.pk if n == "pk" else meta.get_field(n) for n in names)]
    converters = [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]
    select = (
        f"SELECT {', '.join(connection.ops.quote_name(f.column) for f in fields)} FROM {meta.db_table} "
        "WHERE project_id = %s AND external_id "
    )
    ids = list(external_ids)
    postgres = connection.vendor == "postgresql"
    chunk_size = len(ids) if postgres else LOOKUP_CHUNK
    found = {}
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start : start + chunk_size]
            if postgres:
                cursor.execute(select + "= ANY(%s::text[])", [ctx.project_id, _pg_text_array(chunk)])
            else:
                cursor.execute(select + f"IN ({', '.join(['%s'] * len(chunk))})", [ctx.project_id, *chunk])
            for row in cursor.fetchall():
                if converters:
                    row = list(row)
                    for i, f in converters:
                        row[i] = f.from_db_value(row[i], None, connection)
                found[row[0]] = tuple(row[1:])
    return found


# --- Writing ------------------------------------------------------------------------------------


def _plan_write(ctx: _Context, plan: _Plan) -> None:
    """Insert a batch's new rows: prompts, then candidates (they need their prompt's
    key), then comparisons and their candidate links."""
    common = {"project_id": ctx.project_id, "created_at": timezone.now()}
    prompt_pks = plan.prompt_pks
    new_pks = _insert(Prompt, ("external_id", "text", "context", "metadata", "split"), plan.new_prompts, common)
    prompt_pks.update(zip((p[0] for p in plan.new_prompts), new_pks, strict=True))

    candidate_pks = plan.candidate_pks
    new_pks = _insert(
        Candidate,
        ("prompt_id", "external_id", "text", "mime_type", "origin", "metadata"),
        [(prompt_pks[c[0]], *c[1:]) for c in plan.new_candidates],
        {**common, "source": CandidateSource.IMPORTED.value},
    )
    candidate_pks.update(zip((c[1] for c in plan.new_candidates), new_pks, strict=True))

    comparisons = []
    for prompt_external_id, external_id, candidate_external_ids, priority, wanted, gold in plan.new_comparisons:
        is_gold, gold_answer = _gold_answer(gold, candidate_pks)
        wanted = GOLD_WANTED if is_gold else (wanted or ctx.overlap)
        pks = [candidate_pks[ext] for ext in candidate_external_ids]
        comparisons.append((prompt_pks[prompt_external_id], external_id, pks, priority, wanted, is_gold, gold_answer))
    new_pks = _insert(
        Comparison,
        ("prompt_id", "external_id", "candidate_ids", "priority", "wanted", "is_gold", "gold_answer"),
        comparisons,
        common,
    )
    _insert(
        ComparisonCandidate,
        ("comparison_id", "candidate_id", "position"),
        [
            (pk, candidate_pk, position)
            for pk, row in zip(new_pks, comparisons, strict=True)
            for position, candidate_pk in enumerate(row[2])
        ],
        returning_ids=False,
    )


def _insert(
    model, names: tuple[str, ...], rows: list[tuple], constants: dict | None = None, *, returning_ids: bool = True
) -> list[int]:
    """Insert rows given as tuples of field values (by attribute name), plus
    ``constants`` for every row; returns their primary keys, in order. Fields
    neither named nor constant take their model default.

    The keys are drawn before inserting and ascend in the file's order (the queue
    serves equal priorities by id). Raw inserts, not ``bulk_create``: building a
    model instance per row cost more than the database's work (measured).
    """
    if not rows:
        return []
    meta = model._meta
    constants = {**_defaults(model, names, constants or {}), **(constants or {})}
    fields = [meta.get_field(name) for name in names]
    constant_fields = [meta.get_field(name) for name in constants]
    columns = [f.column for f in fields] + [f.column for f in constant_fields]
    insert = _insert_copy if connection.vendor == "postgresql" else _insert_many
    with connection.cursor() as cursor:
        pks = _keys_take(cursor, model, len(rows)) if returning_ids else []
        if returning_ids:
            columns.insert(0, meta.pk.column)
            fields.insert(0, meta.pk)
            rows = [(pk, *row) for pk, row in zip(pks, rows, strict=True)]
        insert(cursor, meta.db_table, columns, fields, rows, constant_fields, list(constants.values()))
    return pks


def _defaults(model, names: tuple[str, ...], constants: dict) -> dict:
    now = timezone.now()
    return {
        f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in model._meta.concrete_fields
        if not f.primary_key and f.attname not in names and f.attname not in constants
    }


def _keys_take(cursor, model, count: int) -> list[int]:
    """``count`` new primary keys for the model's table, ascending.

    Postgres: drawn from the table's sequence, so concurrent inserts elsewhere are
    safe; usually contiguous, then they come back as one small row. SQLite: the
    write transaction holds the database's only write lock (``BEGIN IMMEDIATE``),
    so the keys after the highest ever used are ours.
    """
    table, column = model._meta.db_table, model._meta.pk.column
    if connection.vendor == "postgresql":
        cursor.execute(
            """
            SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) END
            FROM (SELECT nextval(pg_get_serial_sequence(%s, %s)) AS v FROM generate_series(1, %s)) drawn
            """,
            [table, column, count],
        )
        first, last, scattered = cursor.fetchone()
        return list(range(first, last + 1)) if scattered is None else scattered
    cursor.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
        f"coalesce((SELECT max({column}) FROM {table}), 0))",
        [table],
    )
    first = cursor.fetchone()[0] + 1
    return list(range(first, first + count))


def _insert_many(cursor, table, columns, fields, rows, constant_fields, constant_values) -> None:
    """SQLite (and any other database): one ``executemany`` of plain values."""
    constant_values = [f.get_db_prep_save(v, connection) for f, v in zip(constant_fields, constant_values, strict=True)]
    json_at = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]
    if json_at:
        rows = [list(row) for row in rows]
        for row in rows:
            for i in json_at:
                if row[i] is not None:
                    row[i] = json.dumps(row[i], ensure_ascii=False)
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) VALUES ({placeholders})"
    cursor.executemany(sql, [(*row, *constant_values) for row in rows])


def _insert_copy(cursor, table, columns, fields, rows, constant_fields, constant_values) -> None:
    """Postgres: one ``COPY``. Its text is built a column at a time: psycopg's
    ``write_row`` and ``json.dumps`` per value cost 5 µs a row, this 1 µs
    (measured, 200k rows)."""
    suffix = "".join(
        "\t" + _copy_format(f)([value])[0] for f, value in zip(constant_fields, constant_values, strict=True)
    )
    text_columns = [_copy_format(f)(column) for f, column in zip(fields, zip(*rows, strict=True), strict=True)]
    sql = f"COPY {table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) FROM STDIN"
    with cursor.copy(sql) as copy:
        copy.write("".join([line + suffix + "\n" for line in map("\t".join, zip(*text_columns, strict=True))]))


def _pg_text_array(values: list[str]) -> str:
    """A Postgres array literal of strings: ``{"a","b \\"c\\""}``."""
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


# COPY's text format: tab-separated, \N for null, backslash escapes in text.
def _copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_json(value) -> str:
    if value == {}:
        return "{}"
    if type(value) is list and all(type(v) is int for v in value):  # candidate keys: the common case
        return f"[{', '.join(map(str, value))}]"
    return _copy_escape(json.dumps(value, ensure_ascii=False))


def _copy_format(model_field) -> Callable[[tuple], list[str]]:
    """A function turning a column of values into COPY text, one string per value."""
    if isinstance(model_field, JSONField):
        convert = _copy_json
    elif isinstance(model_field, models.BooleanField):
        convert = {True: "t", False: "f"}.__getitem__
    elif isinstance(model_field, (models.CharField, models.TextField, models.FileField)):
        convert = _copy_escape
    else:  # integers, keys, timestamps: str() is COPY's text form
        convert = str

    def column(values: tuple) -> list[str]:
        if None in values:
            return ["\\N" if v is None else convert(v) for v in values]
        return list(map(convert, values))

    return column
