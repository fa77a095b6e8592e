"""The import services: :func:`import_job_create` and :func:`import_job_run` (the
background job), :func:`import_file` (at once), their argument checks, the job's
progress reports, and the core that runs reading, validating and writing."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import logging
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from ..models import Candidate, Comparison, ImportJob, ImportStatus, Project, Prompt
from .columns import _bundle_batch_plain
from .files import _batches, _rows_count, _rows_read
from .locking import project_import_lock
from .plan import _batch_plan
from .rejection import ImportRejected, _Errors, _rejected
from .rows import _batch_parse, _Context, _context, _Seen
from .writing import (
    _analyze,
    _batch_build,
    _batch_send,
    _counts_add,
    _counts_empty,
    _KeyDrawer,
    _media_store,
    _plans_read,
    _write,
)
from .zipped import DATA_EXTENSIONS, media_zip_pack, zip_opened

logger = logging.getLogger(__name__)

IMPORT_KINDS = ("prompts", "candidates", "comparisons", "bundle")
# zip: a manifest in one of the others plus the media files its candidates name (zipped.py).
IMPORT_FORMATS = ("jsonl", "csv", "parquet", "zip")
_EXTENSIONS = {**DATA_EXTENSIONS, ".zip": "zip"}
MEDIA_KINDS = ("bundle", "candidates")  # the kinds whose rows hold candidates, so may come in a zip with media
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


def import_job_create_with_media(
    *,
    project: Project,
    kind: str,
    manifest,
    manifest_name: str,
    media: list,
    options: dict | None = None,
    created_by=None,
) -> ImportJob:
    """A multipart upload's manifest and media files, packed into the zip a media import reads (one pipeline for
    both forms), as a queued import job."""
    _kind_format_check(kind, "zip", manifest_name)
    packed = media_zip_pack(manifest=manifest, manifest_name=manifest_name, files=media)
    with packed:
        return import_job_create(
            project=project,
            kind=kind,
            uploaded_file=File(packed),
            original_name=f"{Path(manifest_name).stem}.zip",
            file_format="zip",
            options=options,
            created_by=created_by,
        )


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
        _job_finish(job.pk, ImportStatus.FAILED, message=_unexpected_error_message(job.pk, exc))
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
    if file_format == "zip" and kind not in MEDIA_KINDS:
        raise _rejected(
            f"A zip brings media files for candidates: use it with kind {' or '.join(MEDIA_KINDS)}, not {kind}.",
            field="kind",
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
    summary = "Imported. " + "; ".join(parts) + "."
    unused = counts.get("media", {}).get("unused")
    if unused:
        shown = counts["media"]["unused_files"]
        more = f" and {unused - len(shown)} more" if unused > len(shown) else ""
        summary += f" {unused} file(s) in the zip that no row names were ignored: {', '.join(shown)}{more}."
    return summary


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


def _unexpected_error_message(job_id: int, exc: Exception) -> str:
    """Names the phase it stopped in; a database's own words (its tables and columns) go to the log only."""
    phase = ImportJob.objects.filter(pk=job_id).values_list("phase", flat=True).first() or "starting"
    if isinstance(exc, DatabaseError):
        return f"The import stopped on a database error while {phase}; nothing was imported (details in the log)."
    return f"The import stopped on an unexpected error while {phase}: {exc}"


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
        if file_format != "zip":
            return _import_core(
                project=project, kind=kind, path=path, file_format=file_format, options=options, progress=progress
            )
        with zip_opened(path, modality=project.modality) as (media, manifest_path, manifest_format):
            # Files are stored only once every row has passed its checks (two passes), or batch by batch while
            # the rows are written (Postgres, one pass); either way before the transaction commits, so a committed
            # candidate always has its file. When the import fails after storing some, they are deleted here,
            # after the rollback (storage has no transactions; a hook on commit instead would leave committed
            # rows without files if storing failed then). Files already stored by earlier imports are kept: the
            # same bytes, shared by content hash.
            try:
                counts = _import_core(
                    project=project,
                    kind=kind,
                    path=manifest_path,
                    file_format=manifest_format,
                    options=options,
                    progress=progress,
                    media=media,
                )
            except BaseException:
                media.discard()
                raise
            return {**counts, "media": media.counts()}


def _import_core(
    *, project: Project, kind: str, path: Path, file_format: str, options: dict, progress, media=None
) -> dict:
    with project_import_lock(project.pk):
        return _import_locked(
            project=project,
            kind=kind,
            path=path,
            file_format=file_format,
            options=options,
            progress=progress,
            media=media,
        )


def _import_locked(
    *, project: Project, kind: str, path: Path, file_format: str, options: dict, progress, media=None
) -> dict:
    progress = progress or (lambda phase, done, total: None)
    ctx = _context(project, kind, options)
    tables = (Prompt, Candidate, Comparison)
    empty = frozenset(m._meta.model_name for m in tables if not m.objects.filter(project=project).exists())
    ctx = dataclasses.replace(ctx, empty_at_start=empty, media=media)

    progress("reading", 0, None)
    rows_total = _rows_count(path, file_format)
    try:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            counts = _import_overlapped(ctx, path, file_format, rows_total, progress)
        else:
            counts = _import_two_passes(ctx, path, file_format, rows_total, progress)
    except IntegrityError as exc:
        # Validation saw these rows free and their references alive: something (a deletion; imports wait for each
        # other) changed the project in between. The database's words name its tables: logged, not shown.
        logger.warning("import into project %s refused by the database: %s", project.pk, exc)
        raise _rejected(
            "The project changed while this import ran (rows it refers to were deleted); nothing was imported. "
            "Run it again: imports are idempotent."
        ) from exc
    if sum(c["created"] for c in counts.values()) >= ANALYZE_MIN_ROWS:
        _analyze(counts)
    return counts


def _import_two_passes(ctx: _Context, path: Path, file_format: str, rows_total: int, progress) -> dict:
    """Validate the whole file, then write it in one transaction: a rejected file
    never opens a write transaction (SQLite: the database's one writer), and an
    import inside a caller's transaction stays on its connection."""
    # The validating pass leaves each batch's plan (new rows, stored keys) in this
    # file, so the writing pass need not read and check the file a second time.
    with tempfile.TemporaryFile(prefix="tandem-import-") as plans:

        def keep(batch_size: int, plan) -> None:
            # Our own temporary file, read back by this same call: not untrusted data.
            pickle.dump((batch_size, plan), plans, protocol=pickle.HIGHEST_PROTOCOL)

        _validate(ctx, path, file_format, rows_total, progress, keep)
        progress("writing", 0, rows_total)
        if ctx.media is not None:
            # Every row passed: store the files before the write transaction opens (on SQLite it holds the
            # database's one write lock, which should not wait on storage).
            plans.seek(0)
            for _, plan in _plans_read(plans):
                _media_store(ctx, plan)
        plans.seek(0)
        with transaction.atomic():
            return _write(ctx, plans, rows_total, progress)


def _import_overlapped(ctx: _Context, path: Path, file_format: str, rows_total: int, progress) -> dict:
    """Postgres: validate and write in one pass inside the one transaction. This
    thread parses, checks and builds each batch's ``COPY`` text (keys drawn through
    a second connection); a worker thread only sends it, through the importing
    connection, and waits while Postgres writes it and makes its foreign-key checks
    (made immediate). So Python and Postgres work at the same time, and the worker
    thread does not take the interpreter's lock from the parser. At the first bad
    row writing stops; checking goes on, to report every error, and the transaction
    is rolled back: all or nothing, as in two passes."""
    counts = _counts_empty(ctx)
    progress("writing", 0, rows_total)
    # The database checks of a batch need the importing connection, so they wait
    # for the batch being written; a first import (empty tables) makes none.
    lookups = not ctx.empty_at_start >= {m._meta.model_name for m in (Prompt, Candidate, Comparison)}
    with transaction.atomic(), _BackgroundWriter() as writer, _side_connection() as side, _lock_handed_often():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        keys = _KeyDrawer(side)

        def write(batch_size: int, plan) -> None:
            _counts_add(counts, plan)
            _media_store(ctx, plan)
            writer.submit(_batch_build(ctx, plan, keys))

        _validate(
            ctx,
            path,
            file_format,
            rows_total,
            progress,
            write,
            before_lookups=writer.wait if lookups else None,
            phase="writing",
        )
    return counts


@contextlib.contextmanager
def _lock_handed_often(interval: float = 0.0005):
    """Let the writer thread take the interpreter's lock back sooner (Python's
    default: after 5 ms). psycopg hands a COPY to libpq in 128 KB pieces, each
    needing the lock, which the parsing thread holds; Postgres waited for the
    next piece meanwhile. At 1M comparisons the writer's time fell from 100.6 s
    to 89.9 s (Postgres's CPU 80 s both), the import from 102.5 s to 92.1 s."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def _side_connection():
    """A second connection to the database (autocommit), closed after use."""
    side = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        yield side
    finally:
        side.close()


class _BackgroundWriter:
    """Sends batches' built inserts, one at a time, on a worker thread through this
    thread's database connection (so inside its transaction); up to ``depth``
    batches wait their turn, so a batch that Postgres takes longer over does not
    stop the parser at once. The caller must leave the connection alone until
    :meth:`wait` returns."""

    def __init__(self, depth: int = 2):
        self.connection = connections[DEFAULT_DB_ALIAS]
        self.depth = depth
        self.pending: collections.deque[Future] = collections.deque()

    def __enter__(self) -> _BackgroundWriter:
        self.connection.inc_thread_sharing()
        self.executor = ThreadPoolExecutor(max_workers=1, initializer=self._connection_share)
        return self

    def _connection_share(self) -> None:
        connections[DEFAULT_DB_ALIAS] = self.connection

    def submit(self, inserts) -> None:
        while len(self.pending) >= self.depth:
            self.pending.popleft().result()  # raises what writing it raised
        self.pending.append(self.executor.submit(_batch_send, inserts))

    def wait(self) -> None:
        """Block until every batch submitted is in; raise what writing one raised."""
        while self.pending:
            self.pending.popleft().result()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
            elif self.pending:
                futures_wait(self.pending)  # done before the rollback; the first error wins
        finally:
            self.executor.shutdown(wait=True)
            self.connection.dec_thread_sharing()


def _validate(
    ctx: _Context,
    path: Path,
    file_format: str,
    rows_total: int,
    progress,
    consume: Callable[[int, object], None],
    *,
    before_lookups: Callable[[], None] | None = None,
    phase: str = "validating",
) -> None:
    """Check every row; hand each batch's plan to ``consume`` while no row has
    failed; raise :class:`ImportRejected` with all errors at the end.
    ``before_lookups`` runs before each batch's database checks."""
    errors = _Errors()
    seen = _Seen()
    done = 0
    for batch in _batches(_rows_read(path, file_format, ctx), errors):
        # A plain bundle batch is parsed a column at a time; any other batch, or
        # one with an error, row by row (which names each error).
        rows = _bundle_batch_plain(ctx, batch, seen) if ctx.kind == "bundle" else None
        if rows is None:
            rows = _batch_parse(ctx, batch, errors, seen)
        if before_lookups is not None:
            before_lookups()
        plan = _batch_plan(ctx, rows, errors)
        if not errors.count:
            consume(len(batch), plan)
        done += len(batch)
        progress(phase, done, rows_total)
    if done == 0 and not errors.count:
        raise _rejected("The file has no rows.")
    if errors.count:
        rows_bad = len({e["line"] for e in errors.items})
        raise ImportRejected(
            errors.as_list(),
            f"Nothing was imported: {errors.count} error(s) on {rows_bad}{'+' if errors.capped else ''} row(s). "
            "Fix them and upload the file again.",
        )
