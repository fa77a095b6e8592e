"""Worker processes for a parallel export: forked from the exporting process, handed jobs (ranges of
comparisons) over pipes, their output read back in job order.

Why ``os.fork`` and not ``multiprocessing``: exports run in Celery's prefork pool, whose children are daemonic,
and ``multiprocessing`` refuses to start children from a daemonic process. A plain fork also starts in
milliseconds with Django, pyarrow and the export's state already loaded (shared copy-on-write: the export has
frozen them out of the garbage collector's walks, so the workers do not write to those pages), where a fresh
interpreter would spend a second of CPU and ~140 MB importing them. The caller closes its database
connections before :class:`Workers` forks (a connection must never be shared by two processes); a worker
opens its own. A worker ends with ``os._exit``: nothing it inherited (sockets, temporary files, ``atexit``
handlers of a Celery worker) is closed or run twice.

Memory stays bounded: a worker has one job at a time, and jobs are handed out only up to ``window`` ahead of
the oldest unfinished one, so the parent buffers the output of at most ``window`` jobs while it waits for that
one (no straggler holds up an unbounded backlog).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any

logger = logging.getLogger(__name__)

Send = Callable[[Any], None]
"""How a job sends one piece of its output (a bytes-like object) to the parent."""


class WorkerFailed(RuntimeError):
    """A worker process raised, or died; the message says what happened."""


@dataclass
class _Worker:
    pid: int
    conn: Connection
    job: int | None = None  # the index of the job it is doing


class Workers:
    """``processes`` forked worker processes. In each, ``session(argument)`` is entered once (e.g. a database
    transaction), then ``work(job, send)`` runs per job: it sends pieces of output and returns a picklable
    summary. Use as a context manager: on leaving, the workers are stopped (killed if anything went wrong)
    and reaped."""

    def __init__(
        self,
        processes: int,
        *,
        session: Callable[[Any], AbstractContextManager],
        work: Callable[[Any, Send], Any],
        window: int | None = None,
    ):
        self.processes = processes
        self.session, self.work = session, work
        self.window = window or 2 * processes
        self.workers: list[_Worker] = []

    def __len__(self) -> int:
        return self.processes

    def __enter__(self) -> Workers:
        try:
            for _ in range(self.processes):
                self.workers.append(self._fork())
        except BaseException:
            self._stop(kill=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop(kill=exc_type is not None)

    def results(self, argument: Any, jobs: Sequence[Any]) -> Iterator[tuple[str, Any]]:
        """Run ``jobs``; yield each one's output in job order: ``("piece", bytes)`` for every piece it sent,
        then ``("done", summary)``. The oldest unfinished job's pieces are yielded as they arrive."""
        for worker in self.workers:
            worker.conn.send(argument)
        output: defaultdict[int, deque[tuple[str, Any]]] = defaultdict(deque)  # by job, until its turn
        head, handed_out = 0, 0  # the oldest unfinished job; jobs handed out so far
        while head < len(jobs):
            for worker in self.workers:
                if worker.job is None and handed_out < min(len(jobs), head + self.window):
                    worker.job = handed_out
                    worker.conn.send((handed_out, jobs[handed_out]))
                    handed_out += 1
            busy = {worker.conn: worker for worker in self.workers if worker.job is not None}
            for conn in wait(list(busy)):
                index, item = self._receive(busy[conn])
                if item[0] == "done":
                    busy[conn].job = None
                output[index].append(item)
            while output[head]:
                item = output[head].popleft()
                yield item
                if item[0] == "done":
                    del output[head]
                    head += 1

    def _receive(self, worker: _Worker) -> tuple[int, tuple[str, Any]]:
        try:
            message = worker.conn.recv()
            if message[0] == "piece":
                return message[1], ("piece", worker.conn.recv_bytes())
        except EOFError:
            raise WorkerFailed(
                f"An export worker process (pid {worker.pid}) ended without finishing its work."
            ) from None
        if message[0] == "failed":
            raise WorkerFailed(message[1])
        return message[1], ("done", message[2])

    def _fork(self) -> _Worker:
        parent_end, child_end = Pipe()
        pid = os.fork()
        if pid == 0:  # the worker: it never returns from here
            parent_end.close()
            for other in self.workers:  # pipes to its siblings, inherited: not its own
                other.conn.close()
            _serve(child_end, self.session, self.work)
        child_end.close()
        return _Worker(pid, parent_end)

    def _stop(self, *, kill: bool) -> None:
        for worker in self.workers:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            else:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)  # no more jobs
            worker.conn.close()
        for worker in self.workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
        self.workers = []


def _serve(conn: Connection, session: Callable[[Any], AbstractContextManager], work: Callable[[Any, Send], Any]):
    """A worker's life: enter the session, do jobs until told to stop, exit without running inherited clean-up."""
    status = 1
    try:
        # A Celery pool process handles SIGTERM itself; a worker must simply end when the parent stops it.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with session(conn.recv()):
            while (message := conn.recv()) is not None:
                index, job = message

                def send(piece, index=index):
                    conn.send(("piece", index))
                    conn.send_bytes(piece)

                conn.send(("done", index, work(job, send)))
        status = 0
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone: nobody to report to
    except BaseException as exc:
        logger.exception("export worker process %s failed", os.getpid())
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        os._exit(status)
