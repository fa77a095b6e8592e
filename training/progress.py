"""What a round's steps may call while they run: phase, fraction, log, training steps — and whether to stop.

One :class:`RoundProgress` belongs to one attempt at one round. Every write it makes is fenced by the attempt
(``Round.attempts``) and refused once an admin asked the round to stop, so a step learns at its next report that it
must stop: :class:`Cancelled` (an admin asked) or :class:`Lost` (another worker took the round over). Steps never
write the ``Round`` row themselves.

The progress bar is shared out between the round's steps by their weights: each step reports fractions of its own
work (``phase(name, at=0.3)``, ``advance(done, total)``, ``training_step(step, total, loss)``) and this class maps
them into the step's range of the bar.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from annotation import jobs
from annotation.jobs import JobCancelled, JobLost, job_report

from .dispatch import round_jobs

logger = logging.getLogger(__name__)

ProgressHook = Callable[[str, int, int, float | None], None]
"""``hook(phase, done, total, loss)``: called at every phase change (done = total = 0) and after every training
step; for a progress bar in the shell. Database writes are throttled separately."""

LOG_TAIL_LINES = 40


# A round's job lifecycle is annotation/jobs.py's: these are its exceptions under the names steps know.
Cancelled = JobCancelled  # an admin asked the round to stop; raised out of a step at its next progress report
Lost = JobLost  # another worker took the round over: stop without writing anything


def stale_after() -> timedelta:
    return round_jobs().stale_after()


class RoundProgress:
    def __init__(self, *, round_id: int, attempt: int, on_progress: ProgressHook | None = None):
        self.round_id, self.attempt, self.on_progress = round_id, attempt, on_progress
        self.interval = float(getattr(settings, "TRAINING_PROGRESS_INTERVAL", 2.0))
        self.log_lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.last_write = 0.0
        self.step = "starting"  # the phase shown as Round.step
        self.steps: list[dict] = []  # Round.steps: one entry per step of the round, with status and timing
        self.span = (0.0, 1.0)  # the current step's range of the bar
        self.train_range = (0.0, 1.0)  # where training steps move inside the current step (local fractions)
        self.train_total = 0
        self.loss: float | None = None
        self._step_started = 0.0

    # --- steps (called by the lifecycle in rounds.py) ---------------------------------------------------------

    def plan(self, names: list[str]) -> None:
        self.steps = [{"name": name, "status": "pending"} for name in names]

    def begin_step(self, name: str, *, span: tuple[float, float]) -> None:
        self.span, self.train_range = span, (0.0, 1.0)
        self.train_total, self.loss = 0, None
        self._step_started = time.monotonic()
        entry = self._entry(name)
        entry.update(status="running", started_at=timezone.now().isoformat())
        self.phase(name)

    def end_step(self, name: str, *, status: str = "succeeded") -> None:
        entry = self._entry(name)
        entry.update(status=status, seconds=round(time.monotonic() - self._step_started, 2))
        if status == "succeeded":
            self.report(progress=self.span[1], force=True)

    def _entry(self, name: str) -> dict:
        for entry in self.steps:
            if entry["name"] == name:
                return entry
        self.steps.append({"name": name, "status": "pending"})
        return self.steps[-1]

    # --- what steps call --------------------------------------------------------------------------------------

    def phase(self, name: str, *, at: float = 0.0) -> None:
        """A new phase of the current step, ``at`` this fraction of the step's work."""
        self.step = name
        self.log(name)
        self.report(progress=self._global(at), force=True)
        self.notify(name)

    def advance(self, done: int, total: int) -> None:
        """``done`` of ``total`` units of the current phase's work (prompts generated, candidates scored…)."""
        start, end = self.train_range
        self.report(progress=self._global(start + (end - start) * done / max(total, 1)), force=done >= total)

    def training_step(self, step: int, total: int, loss: float) -> None:
        """After every optimiser step; moves the bar through ``train_range`` and logs the loss now and then."""
        self.train_total, self.loss = total, (None if loss != loss else round(loss, 5))  # NaN → None
        if self.on_progress is not None:
            self.on_progress("training", step, total, self.loss)
        if time.monotonic() - self.last_write < self.interval and step < total:
            return
        self.log(f"step {step}/{total} loss {fmt(self.loss)}")
        start, end = self.train_range
        self.report(progress=self._global(start + (end - start) * step / max(total, 1)))

    def check(self) -> None:
        """Raise :class:`Cancelled` or :class:`Lost` now if the round is no longer ours to run."""
        self.report(progress=None, force=True)

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self.log_lines.append(f"{stamp} {line}")
        logger.info("round %s: %s", self.round_id, line)

    def tail(self) -> str:
        return "\n".join(self.log_lines)

    # --- writing ----------------------------------------------------------------------------------------------

    def report(self, *, progress: float | None, force: bool = False) -> None:
        """Write phase, progress, steps, heartbeat and log tail, if we still own the round and it is not
        cancelled; ``progress=None`` keeps the bar where it is."""
        now = time.monotonic()
        if not force and now - self.last_write < self.interval:
            return
        self.last_write = now
        fields = {"step": self.step[:40], "log_tail": self.tail(), "steps": self.steps}
        if progress is not None:
            fields["progress"] = min(max(progress, 0.0), 1.0)
        job_report(round_jobs(), self.round_id, self.attempt, **fields)

    def mine(self):
        """The round's row, as long as this attempt owns it and it runs."""
        return round_jobs().fenced(self.round_id, self.attempt)

    def notify(self, name: str) -> None:
        if self.on_progress is not None:
            self.on_progress(name, 0, 0, None)

    def _global(self, local: float) -> float:
        start, end = self.span
        return start + (end - start) * min(max(local, 0.0), 1.0)


class Heartbeat(jobs.Heartbeat):
    """The round's heartbeat thread (``annotation.jobs.Heartbeat``), fenced by the attempt."""

    def __init__(self, *, round_id: int, attempt: int):
        super().__init__(round_jobs(), round_id, attempt)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
