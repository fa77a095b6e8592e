"""Training rounds: the lifecycle only — start, claim, fence, heartbeat, run the steps, commit, cancel, reap.

What a round *does* is its list of steps (``training/steps/``: reward, generate, score, optimise, evaluate,
push); this module runs them in order and owns the ``Round`` row. A round's life (statuses in capitals, every
transition a conditional UPDATE whose row count is checked)::

    round_start ──► QUEUED ──claim──► RUNNING ──► SUCCEEDED (staged writes committed: versions, comparisons)
                      │                 │  │
                      └─► CANCELLED ◄───┘  └──► FAILED (error text; nothing registered or pushed)
                                       (cancel_requested, checked at every progress report)

**One live round per project** is a partial unique index (``round_one_live_per_project``): ``round_start``
turns the IntegrityError into :class:`RoundAlreadyRunning`.

**The job lifecycle** — claim, fencing, heartbeat, cancel, the sweep for dead workers — is the one every
background job shares (``annotation/jobs.py``; imports and exports use it too); this module calls it.

**Redelivery.** The task runs with late ack and reject-on-worker-lost, so a message can arrive twice: the broker
re-delivers it after a worker dies, or a second time while the first worker still runs (a visibility timeout
shorter than the training). ``round_run`` therefore *claims* the round first: ``QUEUED → RUNNING`` or, for a
``RUNNING`` round whose heartbeat is older than ``TRAINING_HEARTBEAT_STALE_SECONDS``, a take-over. Anything else
— a round running with a fresh heartbeat, or one already finished — is left alone: the message is a duplicate.

**Fencing.** Each claim increments ``attempts`` and every later write is conditional on that value, so a worker
that was presumed dead (and replaced) can never overwrite its successor's progress or register a version.

**All or nothing.** Steps stage their database writes (registering versions, pushing generated comparisons into
the queue); they run in one transaction with the write that marks the round succeeded, after every step
succeeded. Artifacts are written atomically by the ML core and deleted again unless that transaction commits, so
the registry never points at a checkpoint of a failed round and the queue never holds half a round.

**Resume** means re-running the round from its first step on the same snapshot: the judgment cut-off and the
config are fixed on the row when the round starts, and every random choice is seeded from the config, so a
resumed attempt redoes the same work. A round that has been claimed more than ``TRAINING_ROUND_MAX_ATTEMPTS``
times fails instead of looping on a job that kills its worker (out of memory).

**Dead workers** are found by the job sweep (``annotation.jobs.jobs_reap_stale``, a beat task every 30 s): a
running round whose heartbeat went stale is put back to ``QUEUED`` and its task re-sent, or failed when out of
attempts.
"""

from __future__ import annotations

import logging
import shutil

from django.db import IntegrityError, transaction

from annotation.jobs import JobStateError, job_cancel, job_claim, job_error_message, job_finish, jobs_reap_stale
from annotation.models import Modality, Project, Prompt

from .config import ConfigInvalid, RoundConfig, round_config_build
from .dispatch import round_jobs, round_run_send
from .errors import NothingToTrain, RoundAlreadyRunning, RoundError, RoundNotCancellable
from .judgments_source import judgment_max_id
from .models import LIVE_ROUND_STATUSES, ModelKind, Round, RoundStatus, RoundTrigger
from .progress import Cancelled, Heartbeat, Lost, ProgressHook, RoundProgress
from .registry import active_version
from .steps import RoundContext, steps_for

__all__ = ["NothingToTrain", "RoundAlreadyRunning", "RoundError", "RoundNotCancellable"]

logger = logging.getLogger(__name__)


def max_attempts() -> int:
    return round_jobs().max_attempts()


# --- start ---------------------------------------------------------------------------------------------------------


def round_start(
    *,
    project: Project,
    triggered_by=None,
    trigger: RoundTrigger = RoundTrigger.MANUAL,
    kind: str | None = None,
    overrides: dict | None = None,
    enqueue: bool = True,
) -> Round:
    """Create a queued round for ``project`` and send its task to the ``gpu`` queue after commit.

    ``kind``: ``reward`` (train the reward model) or ``policy`` (the whole loop: reward model, generate, score,
    optimise the policy, evaluate, push new comparisons). None picks ``policy`` when the training settings name
    a ``policy`` model, else ``reward``.

    Raises :class:`~training.config.ConfigInvalid` (bad settings, no backbone or policy), :class:`NothingToTrain`
    (nothing to learn from yet) or :class:`RoundAlreadyRunning` (the database refused a second live round).
    """
    if project.modality not in (Modality.TEXT, Modality.IMAGE):
        raise ConfigInvalid(
            {"modality": [f"Training rounds are built for text and image projects so far; this is {project.modality}."]}
        )
    config = round_config_build(project_settings=project.training_settings, overrides=overrides)
    kind = kind or (ModelKind.POLICY if config.policy else ModelKind.REWARD)
    _check_startable(project=project, config=config, kind=kind)
    max_id = judgment_max_id(project_id=project.pk)
    if max_id is None and not (kind == ModelKind.POLICY and active_version(project_id=project.pk)):
        raise NothingToTrain("The project has no judgments to train on yet.")
    try:
        # A savepoint: the caller's transaction (a request, a test) stays usable after the IntegrityError.
        with transaction.atomic():
            new = Round.objects.create(
                project=project,
                kind=kind,
                status=RoundStatus.QUEUED,
                step="queued",
                config=config.snapshot(),
                triggered_by=triggered_by if getattr(triggered_by, "is_authenticated", False) else None,
                trigger=trigger,
                judgment_max_id=max_id,
            )
    except IntegrityError:
        live = Round.objects.filter(project=project, status__in=LIVE_ROUND_STATUSES).first()
        if live is None:
            raise
        raise RoundAlreadyRunning(live) from None
    if enqueue:
        round_run_send(new.pk)
    return new


def _check_startable(*, project: Project, config: RoundConfig, kind: str) -> None:
    if kind not in (ModelKind.REWARD, ModelKind.POLICY):
        raise ConfigInvalid({"kind": [f"A round is 'reward' or 'policy', not {kind!r}."]})
    if not config.backbone:
        raise ConfigInvalid(
            {
                "backbone": [
                    "No reward backbone is configured: set 'backbone' in the project's training settings, "
                    "pass one for this round, or set TRAINING_REWARD_BACKBONE for the deployment."
                ]
            }
        )
    if kind == ModelKind.POLICY and not config.policy:
        raise ConfigInvalid(
            {
                "policy": [
                    "A policy round needs a policy model: set 'policy' in the training settings (e.g. "
                    "'builtin:smollm2') or pass one for this round."
                ]
            }
        )
    if kind == ModelKind.POLICY and not Prompt.objects.filter(project=project).exists():
        raise NothingToTrain("The project has no prompts to generate answers for.")


# --- cancel --------------------------------------------------------------------------------------------------------


def round_cancel(*, round_id: int) -> Round:
    """Cancel a queued round at once; ask a running one to stop (it stops at its next progress report)."""
    try:
        return job_cancel(round_jobs(), round_id)
    except JobStateError as exc:
        raise RoundNotCancellable(exc.message.replace("This round", f"Round {round_id}")) from None


# --- run -----------------------------------------------------------------------------------------------------------


def round_run(*, round_id: int, on_progress: ProgressHook | None = None) -> Round | None:
    """Claim the round and run it to the end in this process. Safe to call twice for one round: a duplicate
    (the round is running elsewhere with a fresh heartbeat, or already finished) does nothing.

    Returns the round as it is afterwards (None if it no longer exists).
    """
    attempt = _claim(round_id)
    if attempt is not None:
        _Run(round_id=round_id, attempt=attempt, on_progress=on_progress).run()
    return Round.objects.filter(pk=round_id).first()


def _claim(round_id: int) -> int | None:
    """The attempt number this worker now owns, or None when the round is not ours to run."""
    return job_claim(round_jobs(), round_id)


def _finish(round_id: int, attempt: int, status: RoundStatus, *, step: str, error: str = "", **fields) -> bool:
    return job_finish(round_jobs(), round_id, attempt, status, error=error, step=step, **fields)


class _Run:
    """One attempt at one round, owned by this process: run the round's steps in order, then commit what they
    staged in one transaction. Reads top to bottom in :meth:`run`."""

    def __init__(self, *, round_id: int, attempt: int, on_progress: ProgressHook | None):
        self.round_id, self.attempt = round_id, attempt
        self.progress = RoundProgress(round_id=round_id, attempt=attempt, on_progress=on_progress)

    def run(self) -> None:
        ctx: RoundContext | None = None
        committed = False
        heartbeat = Heartbeat(round_id=self.round_id, attempt=self.attempt)
        heartbeat.start()
        try:
            ctx = self.context()
            steps = steps_for(ctx.round.kind)
            self.progress.plan([step.name for step in steps] + ["register"])
            for step, span in zip(steps, _spans([step.weight for step in steps]), strict=True):
                self.progress.begin_step(step.name, span=span)
                step.run(ctx)
                self.progress.end_step(step.name)
            self.progress.begin_step("register", span=(REGISTER_AT, 1.0))
            self.commit(ctx)
            committed = True
            self.progress.notify("done")
        except Lost:
            logger.warning(
                "round %s: attempt %s lost the round to another worker; stopping", self.round_id, self.attempt
            )
        except Cancelled:
            self.end("cancelled on request", RoundStatus.CANCELLED)
        except KeyboardInterrupt:
            # Ctrl-C in `manage.py train_reward`: the round stops here, so record that instead of leaving it
            # "running" until the reaper notices.
            self.end("interrupted", RoundStatus.CANCELLED)
            raise
        except Exception as exc:
            # Anything else — bad data, a broken backbone, out of memory, the soft time limit — fails the round
            # with the error a person can act on; nothing was registered or pushed, the previous versions stay.
            logger.exception("round %s failed in step %r", self.round_id, self.progress.step)
            self.progress.log(job_error_message(exc))
            message = exc.message if isinstance(exc, RoundError) else job_error_message(exc)
            self.end(f"failed while {self.progress.step}", RoundStatus.FAILED, error=message)
        finally:
            heartbeat.stop()
            if not committed and ctx is not None:
                for artifact in ctx.artifacts:
                    if artifact.exists():
                        shutil.rmtree(artifact, ignore_errors=True)

    def context(self) -> RoundContext:
        current = Round.objects.select_related("project").get(pk=self.round_id)
        if self.attempt > 1:
            self.progress.log(
                f"attempt {self.attempt}: starting again from the first step (same judgments, same config)"
            )
        return RoundContext(
            round=current,
            config=RoundConfig.from_snapshot(current.config),
            attempt=self.attempt,
            progress=self.progress,
        )

    def commit(self, ctx: RoundContext) -> None:
        """Run the staged writes and mark the round succeeded, all in one transaction, if this attempt still owns
        the round and nobody asked it to stop."""
        with transaction.atomic():
            # Lock our row and re-check ownership: a cancel or a take-over may have happened since the last
            # report, and only the owner of a live, uncancelled round may register a version or push comparisons.
            owner = self.progress.mine().select_for_update().values_list("cancel_requested", flat=True).first()
            if owner is None:
                raise Lost()
            if owner:
                raise Cancelled()
            for write in ctx.staged:
                write(ctx)
            self.progress.end_step("register")
            primary = ctx.versions.get(ctx.round.kind) or ctx.versions.get(ModelKind.REWARD)
            _finish(
                self.round_id,
                self.attempt,
                RoundStatus.SUCCEEDED,
                step="done",
                progress=1.0,
                metrics=ctx.metrics,
                model_version=primary,
                log_tail=self.progress.tail(),
                steps=self.progress.steps,
            )

    def end(self, line: str, status: RoundStatus, *, error: str = "") -> None:
        self.progress.log(line if not error else f"{line}: {error}")
        running = next((s for s in self.progress.steps if s.get("status") == "running"), None)
        if running is not None:
            self.progress.end_step(running["name"], status="failed" if status == RoundStatus.FAILED else "cancelled")
        _finish(
            self.round_id,
            self.attempt,
            status,
            step=str(status),
            error=f"Failed while {self.progress.step}: {error}" if error else "",
            log_tail=self.progress.tail(),
            steps=self.progress.steps,
        )


# The last stretch of the bar is the commit (registering versions, pushing comparisons).
REGISTER_AT = 0.98


def _spans(weights: list[float]) -> list[tuple[float, float]]:
    """Each step's range of the progress bar, in proportion to its weight, up to ``REGISTER_AT``."""
    total, spans, start = sum(weights), [], 0.0
    for weight in weights:
        end = start + REGISTER_AT * weight / total
        spans.append((start, end))
        start = end
    return spans


# --- dead workers --------------------------------------------------------------------------------------------------


def rounds_reap_stale() -> list[int]:
    """The job sweep (``annotation.jobs.jobs_reap_stale``) for rounds alone: requeue (or fail, when out of
    attempts) running rounds whose worker stopped sending heartbeats, and send again queued rounds whose message
    was lost. Returns the ids of the rounds it changed."""
    return [job_id for _, job_id in jobs_reap_stale([round_jobs()])]
