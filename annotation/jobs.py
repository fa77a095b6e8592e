"""Background jobs that outlive their worker: one lifecycle for imports, exports and training rounds.

A job's row (``job_models.BackgroundJob``) goes through::

    QUEUED ──claim──► RUNNING ──► SUCCEEDED
      │  ▲              │  │
      │  └─requeue──────┤  └──► FAILED (our message: rows, a stopped worker, never a database's text)
      └──► CANCELLED ◄──┘        │
             ▲                   │
             └── retry: FAILED or CANCELLED ──► QUEUED (same row, same file or request)

Every transition is a conditional UPDATE whose row count is checked.

**Claim.** A worker (a Celery task, or a web process running a small import inline) claims the job before it
starts: ``QUEUED → RUNNING``, or — for a ``RUNNING`` job whose heartbeat is older than the kind's stale limit —
a take-over. Each claim increments ``attempts``; a job claimed more than the kind's ``max_attempts`` times since
its last retry fails with a reason instead of looping on work that kills its worker.

**Fencing.** Every later write of the worker (progress, heartbeat, the final status) is conditional on the attempt
it claimed, so a worker presumed dead can change nothing once another took over. A job's data is written in one
transaction that ends with :func:`job_complete` (the fenced write that marks it succeeded): a stale owner's
transaction is rolled back whole, the successor starts again from the start of its transaction.

**Heartbeat.** A :class:`Heartbeat` thread renews ``heartbeat_at`` every fifth of the stale limit while the attempt
runs; it dies with its process, which is the point.

**Sweep.** :func:`jobs_reap_stale` (one beat task, every 30 s) finds running jobs of every kind whose heartbeat went
stale: requeued (message sent again), or failed once out of attempts, or cancelled if that was asked; and queued
jobs nobody claimed for that long (a lost message, a web process killed before its inline import began): sent
again. Duplicate messages are harmless: only one claim wins.

**Cancel and retry** (researchers, from the API and the dashboard): a queued job is cancelled at once, a running
one at its next progress report or its final fenced write (its transaction is rolled back); a failed or cancelled
job goes back to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .job_models import JobStatus

logger = logging.getLogger(__name__)

ERROR_MAX_CHARS = 4000


class JobCancelled(Exception):
    """Someone asked the job to stop; raised at the worker's next fenced write."""


class JobLost(Exception):
    """This worker no longer owns the job (another attempt took it over): stop without writing anything."""


class JobStateError(Exception):
    """The job is not in a state that allows what was asked (cancel a finished job, retry a running one)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class JobKind:
    """What differs between kinds of job; everything else is this module."""

    name: str  # "import", "export", "round": in logs and messages
    model: type
    send: Callable[[int], None]  # queue the job's task (after the current transaction commits)
    error_field: str = "message"
    stale_setting: str = "JOB_HEARTBEAT_STALE_SECONDS"
    attempts_setting: str = "JOB_MAX_ATTEMPTS"
    outcome_when_failed: str = ""  # what a failed job leaves behind, appended to our failure messages
    # Extra fields written at each transition ("claim", "resume", "requeue", "failed", "cancelled", "retry").
    fields: Callable[[str], dict] = field(default=lambda event: {})

    def stale_after(self) -> timedelta:
        seconds = getattr(settings, self.stale_setting, None)
        if seconds is None:
            seconds = getattr(settings, "JOB_HEARTBEAT_STALE_SECONDS", 90)
        return timedelta(seconds=seconds)

    def max_attempts(self) -> int:
        return int(getattr(settings, self.attempts_setting, None) or getattr(settings, "JOB_MAX_ATTEMPTS", 2))

    def fenced(self, job_id: int, attempt: int):
        """The job's row, as long as this attempt owns it and it runs."""
        return self.model.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt)


KINDS: dict[str, JobKind] = {}


def job_kind_register(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- claim, report, finish (the worker's side) ---------------------------------------------------------------------


def job_claim(kind: JobKind, job_id: int) -> int | None:
    """The attempt number this process now owns, or None when the job is not ours to run (running elsewhere
    with a fresh heartbeat, finished, gone, cancelled, or out of attempts — the last two are recorded here)."""
    now = timezone.now()
    with transaction.atomic():
        claimed = kind.model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            attempts=F("attempts") + 1,
            worker=worker_name(),
            **kind.fields("claim"),
        )
        if not claimed:
            # A running job whose worker went silent: take it over. Under READ COMMITTED a concurrent take-over
            # re-evaluates this WHERE on the row it just updated (fresh heartbeat) and matches nothing.
            stale = Q(heartbeat_at__lt=now - kind.stale_after()) | Q(heartbeat_at__isnull=True)
            claimed = kind.model.objects.filter(stale, pk=job_id, status=JobStatus.RUNNING).update(
                heartbeat_at=now, attempts=F("attempts") + 1, worker=worker_name(), **kind.fields("resume")
            )
        if not claimed:
            status = kind.model.objects.filter(pk=job_id).values_list("status", flat=True).first()
            logger.info("%s %s is %s; this delivery has nothing to do", kind.name, job_id, status or "gone")
            return None
        attempt, floor, cancel_requested = kind.model.objects.values_list(
            "attempts", "attempt_floor", "cancel_requested"
        ).get(pk=job_id)
    if cancel_requested:
        job_finish(kind, job_id, attempt, JobStatus.CANCELLED, **kind.fields("cancelled"))
        return None
    if attempt - floor > kind.max_attempts():
        tries = attempt - floor - 1
        job_finish(
            kind,
            job_id,
            attempt,
            JobStatus.FAILED,
            error=f"Gave up after {tries} attempts: the worker running this {kind.name} stopped each time "
            f"(killed, out of memory, or lost).{_outcome(kind)}",
            **kind.fields("failed"),
        )
        return None
    if attempt - floor > 1:
        logger.warning("%s %s: attempt %s takes over from a worker that stopped", kind.name, job_id, attempt)
    return attempt


def job_report(kind: JobKind, job_id: int, attempt: int, **fields) -> None:
    """Write progress fields and renew the heartbeat, if this attempt still owns the job and nobody asked it to
    stop; else raise :class:`JobCancelled` or :class:`JobLost`."""
    mine = kind.fenced(job_id, attempt)
    if not mine.filter(cancel_requested=False).update(heartbeat_at=timezone.now(), **fields):
        raise JobCancelled() if mine.exists() else JobLost()


def job_complete(kind: JobKind, job_id: int, attempt: int, **fields) -> None:
    """Mark the job succeeded: call it as the last write of the transaction that writes the job's data, so the
    data commits only if this attempt still owns the job and nobody cancelled it (else it raises and the whole
    transaction rolls back)."""
    now = timezone.now()
    mine = kind.fenced(job_id, attempt)
    if not mine.filter(cancel_requested=False).update(
        status=JobStatus.SUCCEEDED, finished_at=now, heartbeat_at=now, **fields
    ):
        raise JobCancelled() if mine.exists() else JobLost()


def job_finish(kind: JobKind, job_id: int, attempt: int, status: str, *, error: str = "", **fields) -> bool:
    """Finish the job as ``status`` if this attempt still owns it; False when it no longer does."""
    now = timezone.now()
    if error or status == JobStatus.FAILED:
        fields[kind.error_field] = error[:ERROR_MAX_CHARS]
    return bool(kind.fenced(job_id, attempt).update(status=status, finished_at=now, heartbeat_at=now, **fields))


def job_error_message(exc: BaseException) -> str:
    """An unexpected error as a line for the job's row. A database's own text names tables, columns and values:
    it goes to the worker's log, and the row says only what kind of error stopped the job."""
    if isinstance(exc, DatabaseError):
        return "a database error; the details are in the worker's log"
    return f"{type(exc).__name__}: {exc}"


def _outcome(kind: JobKind) -> str:
    return f" {kind.outcome_when_failed}" if kind.outcome_when_failed else ""


class Heartbeat(threading.Thread):
    """Renews the job's heartbeat every fifth of the stale limit while this attempt runs, so phases that report
    nothing for a while (loading a model, one long write) are not taken for a dead worker. Its writes are fenced by
    the attempt like every other."""

    def __init__(self, kind: JobKind, job_id: int, attempt: int):
        super().__init__(name=f"{kind.name}-{job_id}-heartbeat", daemon=True)
        self.kind, self.job_id, self.attempt = kind, job_id, attempt
        self.every = kind.stale_after().total_seconds() / 5
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                try:
                    self.kind.fenced(self.job_id, self.attempt).update(heartbeat_at=timezone.now())
                except Exception:
                    # SQLite: the job's own write transaction holds the database's one write lock for a while.
                    logger.warning("%s %s: heartbeat write failed", self.kind.name, self.job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


@contextlib.contextmanager
def job_heartbeat(kind: JobKind, job_id: int, attempt: int) -> Iterator[None]:
    beat = Heartbeat(kind, job_id, attempt)
    beat.start()
    try:
        yield
    finally:
        beat.stop()


# --- cancel and retry (the user's side) ----------------------------------------------------------------------------


def job_cancel(kind: JobKind, job_id: int):
    """Cancel a queued job at once; ask a running one to stop (it stops at its next fenced write, its transaction
    rolled back). Returns the row; raises :class:`JobStateError` for a finished job."""
    now = timezone.now()
    done = kind.model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now, **kind.fields("cancelled")
    )
    if not done:
        done = kind.model.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(cancel_requested=True)
    current = kind.model.objects.get(pk=job_id)
    if not done:
        raise JobStateError(f"This {kind.name} has already {current.status}; there is nothing to cancel.")
    return current


def job_retry(kind: JobKind, job_id: int):
    """Put a failed or cancelled job back in the queue (same row, same input) and send its task. The attempt
    limit counts again from here; ``attempts`` keeps growing, so fencing still holds against older workers."""
    with transaction.atomic():
        done = kind.model.objects.filter(pk=job_id, status__in=(JobStatus.FAILED, JobStatus.CANCELLED)).update(
            status=JobStatus.QUEUED,
            cancel_requested=False,
            attempt_floor=F("attempts"),
            started_at=None,
            finished_at=None,
            heartbeat_at=timezone.now(),  # when it was (re)queued: the sweep resends it only after the stale limit
            **{kind.error_field: "", **kind.fields("retry")},
        )
        current = kind.model.objects.get(pk=job_id)
        if not done:
            raise JobStateError(f"Only a failed or cancelled {kind.name} can be retried; this one is {current.status}.")
        kind.send(job_id)
    return current


# --- the sweep -----------------------------------------------------------------------------------------------------


def jobs_reap_stale(kinds: list[JobKind] | None = None) -> list[tuple[str, int]]:
    """Recover jobs of every registered kind whose worker stopped: see the module's docstring. Returns the
    ``(kind, id)`` of each job it changed. Each change is conditional on the stale heartbeat it saw, so a worker
    that comes back to life at the same moment keeps its job."""
    changed = []
    for kind in kinds if kinds is not None else list(KINDS.values()):
        changed += [(kind.name, job_id) for job_id in _kind_reap(kind)]
    return changed


def _kind_reap(kind: JobKind) -> list[int]:
    now = timezone.now()
    cutoff = now - kind.stale_after()
    seconds = int(kind.stale_after().total_seconds())
    changed = []
    running = kind.model.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    for job in running.only("pk", "attempts", "attempt_floor", "cancel_requested"):
        still_stale = kind.model.objects.filter(
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True),
            pk=job.pk,
            status=JobStatus.RUNNING,
            attempts=job.attempts,
        )
        if job.cancel_requested:
            done = still_stale.update(status=JobStatus.CANCELLED, finished_at=now, **kind.fields("cancelled"))
        elif job.attempts - job.attempt_floor >= kind.max_attempts():
            done = still_stale.update(
                status=JobStatus.FAILED,
                finished_at=now,
                **{
                    kind.error_field: f"The worker running this {kind.name} stopped reporting (no heartbeat for "
                    f"{seconds} s) after {job.attempts - job.attempt_floor} attempt(s).{_outcome(kind)}"
                },
                **kind.fields("failed"),
            )
        else:
            with transaction.atomic():
                done = still_stale.update(status=JobStatus.QUEUED, heartbeat_at=now, **kind.fields("requeue"))
                if done:
                    kind.send(job.pk)
        if done:
            logger.warning("%s %s: worker silent for over %s s; recovered", kind.name, job.pk, seconds)
            changed.append(job.pk)
    # A job queued that long without a claim lost its message (a failed send, a broker restarted without
    # persistence, a web process killed before its inline import began): send it again. heartbeat_at marks when
    # it was last (re)queued.
    lost = (
        kind.model.objects.filter(status=JobStatus.QUEUED, created_at__lt=cutoff)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        .values_list("pk", flat=True)
    )
    for job_id in lost:
        with transaction.atomic():
            if (
                kind.model.objects.filter(pk=job_id, status=JobStatus.QUEUED)
                .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
                .update(heartbeat_at=now)
            ):
                kind.send(job_id)
                logger.warning("%s %s: queued for over %s s without a worker; sent again", kind.name, job_id, seconds)
                changed.append(job_id)
    return changed


# --- the annotation app's kinds ------------------------------------------------------------------------------------


def task_send(name: str, *args) -> None:
    """Send a Celery task by name once the current transaction commits (a worker must find the row; a rolled-back
    change sends nothing). A failed send is logged, not raised: the sweep sends it again."""

    def send() -> None:
        from config.celery import app

        app.send_task(name, args=list(args))

    transaction.on_commit(send, robust=True)


def _import_fields(event: str) -> dict:
    if event in ("claim", "resume"):
        # A new attempt starts again from the start of the import's transaction.
        return {"phase": "", "rows_done": 0, "errors": [], "result": {}, "message": ""}
    if event == "retry":
        return {"phase": "", "rows_done": 0, "errors": [], "result": {}}
    return {}


def _export_fields(event: str) -> dict:
    return (
        {"rows_done": 0, "message": "", "file": "", "size_bytes": None} if event in ("claim", "resume", "retry") else {}
    )


def _import_kind() -> JobKind:
    from .models import ImportJob

    return JobKind(
        name="import",
        model=ImportJob,
        send=lambda job_id: task_send("annotation.tasks.import_run_task", job_id),
        outcome_when_failed="Nothing was imported; retry it once the cause is fixed.",
        fields=_import_fields,
    )


def _export_kind() -> JobKind:
    from .models import ExportJob

    return JobKind(
        name="export",
        model=ExportJob,
        send=lambda job_id: task_send("annotation.tasks.export_run_task", job_id),
        outcome_when_failed="No file was written; retry it once the cause is fixed.",
        fields=_export_fields,
    )


def import_jobs() -> JobKind:
    return KINDS.get("import") or job_kind_register(_import_kind())


def export_jobs() -> JobKind:
    return KINDS.get("export") or job_kind_register(_export_kind())
