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
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from ..jobs import (
    JobCancelled,
    JobLost,
    import_jobs,
    job_claim,
    job_complete,
    job_error_message,
    job_finish,
    job_heartbeat,
    job_report,
)
from ..models import Candidate, Comparison, ImportJob, ImportStatus, Project, Prompt
from .columns import _bundle_batch_plain
from .files import _batches, _rows_count, _rows_read
from .labelled import LABELLED_KINDS  # label imports run as import jobs too
from .locking import project_import_lock
from .plan import _batch_plan
from .rejection import ImportRejected, _Errors, _rejected
from .rows import _batch_parse, _Context, _context, _Seen
from .writing import (
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
PROGRESS_EVERY_S = 0.5  # a job's rows done are written at most this often within a phase (_JobProgress)

logger = logging.getLogger(__name__)

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


def labelled_import_job_create(
    *,
    project: Project,
    kind: str,
    uploaded_file,
    original_name: str,
    file_format: str,
    annotator: str | None = None,
    created_by=None,
) -> ImportJob:
    """Store an uploaded file of labels (``labelled.py``: kind ``pairs`` or ``judgments``) as a queued import
    job; its labels go to ``annotator`` (a username) or to ``created_by``."""
    if kind not in LABELLED_KINDS:
        raise _rejected(f"Unknown label import kind {kind!r}; use one of: {', '.join(LABELLED_KINDS)}.", field="kind")
    job = ImportJob(
        project=project,
        kind=kind,
        file_format=file_format,
        original_name=original_name[:255],
        options={"annotator": annotator} if annotator else {},
        created_by=created_by,
    )
    name = get_valid_filename(Path(original_name).name) or f"labels.{file_format}"
    job.file.save(name, uploaded_file if isinstance(uploaded_file, File) else File(uploaded_file), save=False)
    job.save()
    return job


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Claim the job and run it to the end in this process; return it as it is afterwards.

    A background job (``annotation/jobs.py``): a redelivered message, or a second call, does nothing while the
    job runs elsewhere with a fresh heartbeat, and takes it over — from the start of its transaction — once that
    heartbeat went stale. The rows and the job's ``succeeded`` are committed together, only while this attempt
    still owns the job and nobody cancelled it. Bad data never raises: it fails the job with its row errors. An
    unexpected exception fails the job with our message (the details go to the log) and is re-raised.
    """
    kind = import_jobs()
    attempt = job_claim(kind, job_id)
    if attempt is not None:
        with job_heartbeat(kind, job_id, attempt):
            _import_job_attempt(kind, job_id, attempt)
    return ImportJob.objects.filter(pk=job_id).first()  # None once deleted (with its project)


def _import_job_attempt(kind, job_id: int, attempt: int) -> None:
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    progress = _JobProgress(kind, job_id, attempt)

    def complete(counts: dict) -> None:
        job_complete(
            kind,
            job_id,
            attempt,
            result=counts,
            message=_counts_summary(counts),
            phase="done",
            rows_done=progress.rows_total or 0,
        )

    try:
        with _job_file_path(job) as path:
            if job.kind in LABELLED_KINDS:
                _labelled_import_run(job, path, progress, complete)
            else:
                _import(
                    project=job.project,
                    kind=job.kind,
                    path=path,
                    file_format=job.file_format,
                    options=job.options,
                    progress=progress,
                    before_commit=complete,
                )
    except JobLost:
        logger.warning("import %s: attempt %s lost the job to another worker; rolled back", job_id, attempt)
    except JobCancelled:
        job_finish(kind, job_id, attempt, ImportStatus.CANCELLED, message="Cancelled; nothing was imported.")
    except ImportRejected as exc:
        job_finish(kind, job_id, attempt, ImportStatus.FAILED, errors=exc.errors, error=exc.message)
    except Exception as exc:
        logger.exception("import %s failed", job_id)
        job_finish(
            kind,
            job_id,
            attempt,
            ImportStatus.FAILED,
            error=f"The import stopped on an unexpected error while {_phase_of(job_id)} ({job_error_message(exc)}); "
            "nothing was imported.",
        )
        raise
    finally:
        progress.close()


def _phase_of(job_id: int) -> str:
    return ImportJob.objects.filter(pk=job_id).values_list("phase", flat=True).first() or "starting"


def _labelled_import_run(job: ImportJob, path: Path, progress, complete) -> None:
    """A label import (kinds ``pairs``, ``judgments``): its labels are credited to ``options["annotator"]`` (a
    username) or to the user who uploaded the file."""
    from django.contrib.auth import get_user_model

    from .labelled import labelled_import

    credited = job.created_by
    if job.options.get("annotator"):
        credited = get_user_model().objects.filter(username=job.options["annotator"]).first()
        if credited is None:
            raise _rejected(f"No user named {job.options['annotator']!r} to credit the labels to.", field="annotator")
    progress("validating", 0, None)
    labelled_import(
        project=job.project,
        kind=job.kind,
        path=path,
        file_format=job.file_format,
        user=credited,
        before_commit=complete,
    )


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
    if all(isinstance(n, int) for n in counts.values()):  # a label import's flat counts
        return "Imported. " + ", ".join(f"{n} {name}" for name, n in counts.items()) + "."
    parts = [f"{name}: {c['created']} created, {c['unchanged']} unchanged" for name, c in counts.items()]
    summary = "Imported. " + "; ".join(parts) + "."
    unused = counts.get("media", {}).get("unused")
    if unused:
        shown = counts["media"]["unused_files"]
        more = f" and {unused - len(shown)} more" if unused > len(shown) else ""
        summary += f" {unused} file(s) in the zip that no row names were ignored: {', '.join(shown)}{more}."
    return summary


class _JobProgress:
    """Writes an import's progress (and heartbeat) to its job row, visible while the import runs; fenced by the
    attempt, so it raises ``JobCancelled`` or ``JobLost`` (rolling the import back) once the job is not ours.

    Each report is a commit of its own: a new phase is always written, rows done within a phase at most every
    ``PROGRESS_EVERY_S`` (the job's final write says the last count; the heartbeat thread keeps it alive between).
    So an import of a batch or two writes its phases only, and a cancel is seen within that time or at the end.

    While the write transaction is open, the job row is updated through a second
    connection (Postgres), since an update on the importing connection would only
    show at commit. SQLite has one writer at a time, so there the writing phase
    reports only at its start and end.
    """

    def __init__(self, kind, job_id: int, attempt: int):
        self.kind, self.job_id, self.attempt = kind, job_id, attempt
        self.rows_total: int | None = None
        self._side = None
        self._written: tuple[str, float] | None = None  # the phase last written, and when (monotonic)

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        self.rows_total = total
        now = time.monotonic()
        if self._written is not None and self._written[0] == phase and now - self._written[1] < PROGRESS_EVERY_S:
            return
        self._written = (phase, now)
        fields = {"phase": phase, "rows_done": done, "rows_total": total}
        if phase != "writing" or done == 0:
            job_report(self.kind, self.job_id, self.attempt, **fields)
        elif connection.vendor == "postgresql":
            if self._side is None:
                # Same settings as the importing connection; autocommit, so each update shows at once.
                self._side = connections.create_connection(DEFAULT_DB_ALIAS)
            with self._side.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {ImportJob._meta.db_table} SET phase = %s, rows_done = %s, rows_total = %s, "
                    "heartbeat_at = %s WHERE id = %s AND status = 'running' AND attempts = %s "
                    "AND NOT cancel_requested",
                    [phase, done, total, timezone.now(), self.job_id, self.attempt],
                )
                if cursor.rowcount == 0:
                    # Asked on this connection too: the importing one belongs to the writer thread meanwhile. A row
                    # this connection cannot see (created in the caller's open transaction) is left to the fenced
                    # write that ends the import's transaction.
                    cursor.execute(
                        f"SELECT status = 'running' AND attempts = %s, cancel_requested "
                        f"FROM {ImportJob._meta.db_table} WHERE id = %s",
                        [self.attempt, self.job_id],
                    )
                    row = cursor.fetchone()
                    if row is not None:
                        mine, cancelled = row
                        raise JobCancelled() if mine and cancelled else JobLost()

    def close(self) -> None:
        if self._side is not None:
            self._side.close()


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


def _import(
    *, project: Project, kind: str, path: Path, file_format: str, options: dict, progress, before_commit=None
) -> dict:
    """``before_commit(counts)``: the last call inside the write transaction (the job's fenced ``succeeded``)."""
    with _gc_paused():
        if file_format != "zip":
            return _import_core(
                project=project,
                kind=kind,
                path=path,
                file_format=file_format,
                options=options,
                progress=progress,
                before_commit=before_commit,
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
                    before_commit=before_commit and (lambda counts: before_commit({**counts, "media": media.counts()})),
                )
            except BaseException:
                media.discard()
                raise
            return {**counts, "media": media.counts()}


def _import_core(
    *,
    project: Project,
    kind: str,
    path: Path,
    file_format: str,
    options: dict,
    progress,
    media=None,
    before_commit=None,
) -> dict:
    with project_import_lock(project.pk):
        counts = _import_locked(
            project=project,
            kind=kind,
            path=path,
            file_format=file_format,
            options=options,
            progress=progress,
            media=media,
            before_commit=before_commit,
        )
    return counts


def _import_locked(
    *, project: Project, kind: str, path: Path, file_format: str, options: dict, progress, media=None, before_commit
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
            counts = _import_overlapped(ctx, path, file_format, rows_total, progress, before_commit)
        else:
            counts = _import_two_passes(ctx, path, file_format, rows_total, progress, before_commit)
    except IntegrityError as exc:
        # Validation saw these rows free and their references alive: something (a deletion; imports wait for each
        # other) changed the project in between. The database's words name its tables: logged, not shown.
        logger.warning("import into project %s refused by the database: %s", project.pk, exc)
        raise _rejected(
            "The project changed while this import ran (rows it refers to were deleted); nothing was imported. "
            "Run it again: imports are idempotent."
        ) from exc
    return counts


def _import_two_passes(
    ctx: _Context, path: Path, file_format: str, rows_total: int, progress, before_commit=None
) -> dict:
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
            counts = _write(ctx, plans, rows_total, progress)
            if before_commit is not None:
                before_commit(counts)
            return counts


def _import_overlapped(
    ctx: _Context, path: Path, file_format: str, rows_total: int, progress, before_commit=None
) -> dict:
    """Postgres: validate and write in one pass inside the one transaction. This
    thread parses, checks and builds each batch's ``COPY`` text (keys drawn through
    a second connection while the importing one is busy); a worker thread only
    sends it, through the importing connection, and waits while Postgres writes it
    and makes its foreign-key checks (made immediate). So Python and Postgres work at the same time, and the worker
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
        keys = _KeyDrawer(connection, side=side, busy=writer.busy)

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
        if before_commit is not None:
            writer.wait()  # the connection is the writer thread's until then
            before_commit(counts)
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
    """A second connection to the database (autocommit), closed after use; it connects on its first query."""
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

    def busy(self) -> bool:
        """Whether a batch is still being written (else the connection is free for this thread)."""
        return not all(f.done() for f in self.pending)

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
