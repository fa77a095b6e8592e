"""The import services: :func:`import_job_create` and :func:`import_job_run` (the
background job), :func:`import_file` (at once), their argument checks, the job's
progress reports, and the core that runs reading, validating and writing."""

from __future__ import annotations

import contextlib
import gc
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from ..models import ImportJob, ImportStatus, Project
from .files import _batches, _rows_count, _rows_read
from .plan import _batch_plan
from .rejection import ImportRejected, _Errors, _rejected
from .rows import _batch_parse, _Context, _context, _Seen
from .writing import _analyze, _write

IMPORT_KINDS = ("prompts", "candidates", "comparisons", "bundle")
IMPORT_FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
IMPORT_OPTIONS = ("comparisons",)  # bundle: how to build comparisons for rows that have no `comparisons` column
ANALYZE_MIN_ROWS = 1000  # refresh planner statistics after imports this large: Postgres runs without autovacuum
# A job still "running" this long after it started lost its worker (the Celery task's
# time limit is 4 h), so a redelivered message may run it again.
STALE_RUNNING_AFTER = timedelta(hours=4, minutes=10)

Progress = Callable[[str, int, "int | None"], None]  # (phase, rows done, rows total)


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


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cycle collector: an import allocates millions of small objects
    that live for a batch or more, and the collector's repeated walks over them took
    40 % of the validating pass (measured, 100k bundle rows). The importer builds
    no reference cycles that need it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _import(*, project: Project, kind: str, path: Path, file_format: str, options: dict, progress) -> dict:
    with _gc_paused():
        return _import_core(
            project=project, kind=kind, path=path, file_format=file_format, options=options, progress=progress
        )


def _import_core(*, project: Project, kind: str, path: Path, file_format: str, options: dict, progress) -> dict:
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
