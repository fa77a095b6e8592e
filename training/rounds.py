"""Training rounds: start, run, cancel, and recover from dead workers.

A round's life (statuses in capitals, all transitions are conditional UPDATEs whose row count is checked)::

    round_start ──► QUEUED ──claim──► RUNNING ──► SUCCEEDED (new version registered; active if configured)
                      │                 │  │
                      └─► CANCELLED ◄───┘  └──► FAILED (error text; nothing registered; previous version kept)
                                       (cancel_requested, checked at every progress report)

**One live round per project** is a partial unique index (``round_one_live_per_project``): ``round_start``
turns the IntegrityError into :class:`RoundAlreadyRunning`.

**Redelivery.** The task runs with late ack and reject-on-worker-lost, so a message can arrive twice: the broker
re-delivers it after a worker dies, or a second time while the first worker still runs (a visibility timeout
shorter than the training). ``round_run`` therefore *claims* the round first: ``QUEUED → RUNNING`` or, for a
``RUNNING`` round whose heartbeat is older than ``TRAINING_HEARTBEAT_STALE_SECONDS``, a take-over. Anything else
— a round running with a fresh heartbeat, or one already finished — is left alone: the message is a duplicate.

**Fencing.** Each claim increments ``attempts`` and every later write is conditional on that value, so a worker
that was presumed dead (and replaced) can never overwrite its successor's progress or register a version.

**Resume** means re-running the round from its first step on the same snapshot: the judgment cut-off and the
config are fixed on the row when the round starts. Reward training takes minutes on a GPU, so no mid-training
checkpoint is kept; the policy step (issue 5) will want one. A round that has been claimed more than
``TRAINING_ROUND_MAX_ATTEMPTS`` times fails instead of looping on a job that kills its worker (out of memory).

**Dead workers** are found by :func:`rounds_reap_stale` (run by the scheduler): a running round whose heartbeat
went stale is put back to ``QUEUED`` and its task re-sent, or failed when out of attempts.

**Span models.** When the project's schema has span categories and some judgment carries span marks, the round
also trains the fine-grained span-reward model (``training.ml.span_rewards``) on the same prompt split, evaluates
it on the held-out texts and registers it as a ``span`` version in the same transaction as the reward version
(each kind has its own active version). A failure there fails the round like any other step.

**Artifacts** are written atomically by the ML core (``save_reward_model``). The version row is created in the
same transaction that marks the round succeeded; if anything fails after the artifact was written, the artifact
is deleted, so the registry never points at a checkpoint whose round failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.models import Modality, Project

from . import registry
from .backbone_policy import backbone_for_loading
from .config import ConfigInvalid, RoundConfig, round_config_build
from .judgments_source import judgment_max_id, judgment_records, span_categories, span_examples
from .models import LIVE_ROUND_STATUSES, ModelKind, Round, RoundStatus, RoundTrigger

logger = logging.getLogger(__name__)

ProgressHook = Callable[[str, int, int, float | None], None]
"""``hook(step_name, done, total, loss)``: called at every phase change (done = total = 0) and after every
training step; for a progress bar in the shell. Database writes are throttled separately."""

LOG_TAIL_LINES = 40
ERROR_MAX_CHARS = 4000

# Share of the progress bar each phase ends at (training fills the range between "training" and "evaluating").
PHASES = {
    "reading judgments": 0.01,
    "building pairs": 0.03,
    "training": 0.05,
    "evaluating": 0.85,
    "saving": 0.92,
    "registering": 0.98,
}
# With a span model, holistic training ends earlier and the span model takes the range after it.
SPAN_PHASES = {"evaluating": 0.55, "training": 0.58}


class RoundError(Exception):
    """A round cannot be started or changed as asked; ``message`` says why, for a person."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class RoundAlreadyRunning(RoundError):
    def __init__(self, live: Round):
        self.round = live
        super().__init__(f"Round {live.pk} of this project is still {live.status}; wait for it to finish or cancel it.")


class NothingToTrain(RoundError):
    pass


class RoundNotCancellable(RoundError):
    pass


class _Cancelled(Exception):
    """An admin asked the round to stop; raised out of the training loop at the next progress report."""


class _Lost(Exception):
    """This worker no longer owns the round (another attempt took it over): stop without writing anything."""


def _setting(name: str, default):
    return getattr(settings, name, default)


def stale_after() -> timedelta:
    return timedelta(seconds=_setting("TRAINING_HEARTBEAT_STALE_SECONDS", 300))


def max_attempts() -> int:
    return int(_setting("TRAINING_ROUND_MAX_ATTEMPTS", 2))


# --- start ---------------------------------------------------------------------------------------------------------


def round_start(
    *,
    project: Project,
    triggered_by=None,
    trigger: RoundTrigger = RoundTrigger.MANUAL,
    overrides: dict | None = None,
    enqueue: bool = True,
) -> Round:
    """Create a queued reward round for ``project`` and send its task to the ``gpu`` queue after commit.

    Raises :class:`~training.config.ConfigInvalid` (bad settings, no backbone), :class:`NothingToTrain` (no
    judgments yet) or :class:`RoundAlreadyRunning` (the database refused a second live round).
    """
    if project.modality != Modality.TEXT:
        raise ConfigInvalid(
            {"modality": [f"Reward training is built for text projects only; this is {project.modality}."]}
        )
    config = round_config_build(project_settings=project.training_settings, overrides=overrides)
    if not config.backbone:
        raise ConfigInvalid(
            {
                "backbone": [
                    "No reward backbone is configured: set 'backbone' in the project's training settings, "
                    "pass one for this round, or set TRAINING_REWARD_BACKBONE for the deployment."
                ]
            }
        )
    max_id = judgment_max_id(project_id=project.pk)
    if max_id is None:
        raise NothingToTrain("The project has no judgments to train on yet.")
    try:
        # A savepoint: the caller's transaction (a request, a test) stays usable after the IntegrityError.
        with transaction.atomic():
            new = Round.objects.create(
                project=project,
                kind=ModelKind.REWARD,
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
        _send(new.pk)
    return new


def _send(round_id: int) -> None:
    from .tasks import round_run_task

    # After commit: a worker must find the row, and a rolled-back start must send nothing. A failed send (broker
    # down) is logged, not raised: the round stays queued and rounds_reap_stale sends it again.
    transaction.on_commit(lambda: round_run_task.delay(round_id), robust=True)


# --- cancel --------------------------------------------------------------------------------------------------------


def round_cancel(*, round_id: int) -> Round:
    """Cancel a queued round at once; ask a running one to stop (it stops at its next progress report)."""
    now = timezone.now()
    cancelled = Round.objects.filter(pk=round_id, status=RoundStatus.QUEUED).update(
        status=RoundStatus.CANCELLED, step="cancelled", cancel_requested=True, finished_at=now
    )
    if not cancelled:
        cancelled = Round.objects.filter(pk=round_id, status=RoundStatus.RUNNING).update(cancel_requested=True)
    current = Round.objects.get(pk=round_id)
    if not cancelled:
        raise RoundNotCancellable(f"Round {round_id} has already {current.status}; there is nothing to cancel.")
    return current


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
    now = timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with transaction.atomic():
        claimed = Round.objects.filter(pk=round_id, status=RoundStatus.QUEUED).update(
            status=RoundStatus.RUNNING,
            step="starting",
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            worker=worker,
        )
        if not claimed:
            # A running round whose worker went silent: take it over. Under READ COMMITTED a concurrent
            # take-over re-evaluates this WHERE on the row it just updated (fresh heartbeat) and matches nothing.
            stale = Q(heartbeat_at__lt=now - stale_after()) | Q(heartbeat_at__isnull=True)
            claimed = Round.objects.filter(stale, pk=round_id, status=RoundStatus.RUNNING).update(
                step="resuming", heartbeat_at=now, attempts=F("attempts") + 1, worker=worker
            )
        if not claimed:
            status = Round.objects.filter(pk=round_id).values_list("status", flat=True).first()
            logger.info("round %s is %s; this delivery has nothing to do", round_id, status or "gone")
            return None
        attempt, cancel_requested = Round.objects.values_list("attempts", "cancel_requested").get(pk=round_id)
    if cancel_requested:
        _finish(round_id, attempt, RoundStatus.CANCELLED, step="cancelled")
        return None
    if attempt > max_attempts():
        _finish(
            round_id,
            attempt,
            RoundStatus.FAILED,
            step="failed",
            error=f"Gave up after {attempt - 1} attempts: the worker running this round stopped each time "
            "(killed, out of memory, or lost). The previous version stays active.",
        )
        return None
    if attempt > 1:
        logger.warning("round %s: attempt %s takes over from a worker that stopped", round_id, attempt)
    return attempt


def _finish(round_id: int, attempt: int, status: RoundStatus, *, step: str, error: str = "", **fields) -> bool:
    now = timezone.now()
    return bool(
        Round.objects.filter(pk=round_id, status=RoundStatus.RUNNING, attempts=attempt).update(
            status=status, step=step, error=error[:ERROR_MAX_CHARS], finished_at=now, heartbeat_at=now, **fields
        )
    )


class _Run:
    """One attempt at one round, owned by this process. Reads top to bottom in :meth:`run`."""

    def __init__(self, *, round_id: int, attempt: int, on_progress: ProgressHook | None):
        self.round_id, self.attempt, self.on_progress = round_id, attempt, on_progress
        self.log_lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.interval = float(_setting("TRAINING_PROGRESS_INTERVAL", 2.0))
        self.last_write = 0.0
        self.step = "starting"
        self.train_total = 0
        self.loss: float | None = None
        self.train_range = (PHASES["training"], PHASES["evaluating"])  # where training steps move the bar

    def run(self) -> None:
        from training.ml.evaluate import compare_metrics, evaluate_reward_model
        from training.ml.pairs import build_preference_pairs
        from training.ml.reward import RewardTrainingConfig, save_reward_model, train_reward_model

        artifacts: list[Path] = []  # written by this attempt; removed unless the versions were registered
        registered = False
        heartbeat = _Heartbeat(round_id=self.round_id, attempt=self.attempt)
        heartbeat.start()
        try:
            current = Round.objects.select_related("project").get(pk=self.round_id)
            config = RoundConfig.from_snapshot(current.config)
            if self.attempt > 1:
                self.log(f"attempt {self.attempt}: starting again from the first step (same judgments, same config)")
            # Checked again here, on the resolved path: the folder or a symlink may have changed since the start.
            backbone = backbone_for_loading(config.backbone)

            self.phase("reading judgments")
            records = judgment_records(project_id=current.project_id, max_judgment_id=current.judgment_max_id)
            categories = span_categories(current.project) if config.span_rewards else ()
            marked = span_examples(
                project_id=current.project_id, max_judgment_id=current.judgment_max_id, categories=categories
            )
            if categories and not marked:
                self.log("the schema has span categories but no judgment has span marks yet: no span model")
            self.train_range = (PHASES["training"], SPAN_PHASES["evaluating"] if marked else PHASES["evaluating"])

            self.phase("building pairs")
            seed = config.seed if config.seed is not None else current.project_id
            pairs = build_preference_pairs(
                records,
                tie_policy=config.tie_policy,
                use_strength_margin=config.use_strength_margin,
                eval_fraction=config.eval_fraction,
                seed=seed,
            )
            self.log(
                f"{len(records)} judgments → {len(pairs.train)} train / {len(pairs.eval)} eval pairs "
                f"(snapshot {pairs.snapshot_id}; {pairs.stats.get('gold_excluded', 0)} gold excluded)"
            )
            if len(pairs.train) < config.min_train_pairs:
                raise NothingToTrain(
                    f"Only {len(pairs.train)} training pairs (min_train_pairs is {config.min_train_pairs})."
                )

            self.phase("training")
            ml_config = RewardTrainingConfig(
                backbone=backbone,
                max_length=config.max_length,
                learning_rate=config.learning_rate,
                num_epochs=config.epochs,
                max_steps=config.max_steps,
                batch_size=config.batch_size,
                gradient_accumulation_steps=config.gradient_accumulation_steps,
                seed=seed,
                ensemble_size=config.ensemble_size,
                lora_r=config.lora_r,
                bf16=config.bf16,
            )
            started = time.monotonic()
            model = train_reward_model(pairs, ml_config, progress=self.training_step)
            train_seconds = time.monotonic() - started

            self.phase("evaluating", progress=self.train_range[1])
            eval_metrics = evaluate_reward_model(model, pairs.eval) if pairs.eval else None
            previous = registry.active_version(project_id=current.project_id, kind=current.kind)
            previous_eval = (previous.metrics or {}).get("eval") if previous else None
            metrics = {
                "eval": eval_metrics,
                "vs_previous": compare_metrics(eval_metrics, previous_eval) if eval_metrics else {},
                "previous_version": previous.version if previous else None,
                "pairs": pairs.stats,
                "train": {"seconds": round(train_seconds, 2), "steps": self.train_total, "final_loss": self.loss},
            }
            if eval_metrics:
                self.log(f"held-out accuracy {_fmt(eval_metrics.get('accuracy'))} on {eval_metrics['n_pairs']} pairs")
            else:
                self.log("no held-out pairs: mark prompts 'eval' or raise eval_fraction to evaluate")
            activate = _should_activate(config, eval_metrics, previous_eval, key="accuracy")

            span = None
            if marked:
                span = self.train_span_model(
                    current, config, categories=categories, rows=marked, splits=pairs.prompt_splits, backbone=backbone
                )

            self.phase("saving")
            extra = {"round": self.round_id, "project": current.project_id, "code_version": _code_version()}
            relpath = registry.artifact_relpath(
                project_id=current.project_id, kind=current.kind, round_id=self.round_id, attempt=self.attempt
            )
            artifacts.append(registry.artifact_location(relpath))
            save_reward_model(model, artifacts[-1], extra=extra)
            if span is not None:
                from training.ml.span_rewards import save_span_reward_model

                span_relpath = registry.artifact_relpath(
                    project_id=current.project_id, kind=ModelKind.SPAN, round_id=self.round_id, attempt=self.attempt
                )
                artifacts.append(registry.artifact_location(span_relpath))
                save_span_reward_model(
                    span.model, artifacts[-1], extra={**extra, "judgment_snapshot_id": span.snapshot_id}
                )

            self.phase("registering")
            with transaction.atomic():
                # Lock our row and re-check ownership: a cancel or a take-over may have happened since the last
                # report, and only the owner of a live, uncancelled round may register a version.
                owner = (
                    Round.objects.select_for_update()
                    .filter(pk=self.round_id, status=RoundStatus.RUNNING, attempts=self.attempt)
                    .values_list("cancel_requested", flat=True)
                    .first()
                )
                if owner is None:
                    raise _Lost()
                if owner:
                    raise _Cancelled()
                version = registry.version_register(
                    project_id=current.project_id,
                    kind=current.kind,
                    base_model=config.backbone,
                    artifact_path=relpath,
                    metrics=metrics,
                    config=config.snapshot(),
                    judgment_snapshot_id=pairs.snapshot_id,
                    judgment_count=len(pairs.judgment_ids),
                    judgment_max_id=current.judgment_max_id,
                    activate=activate,
                )
                self.log(f"registered {version}" + (" (active)" if activate else " (not activated)"))
                if span is not None:
                    span_version = registry.version_register(
                        project_id=current.project_id,
                        kind=ModelKind.SPAN,
                        base_model=config.backbone,
                        artifact_path=span_relpath,
                        metrics=span.metrics,
                        config=config.snapshot(),
                        judgment_snapshot_id=span.snapshot_id,
                        judgment_count=span.judgment_count,
                        judgment_max_id=current.judgment_max_id,
                        activate=span.activate,
                    )
                    self.log(f"registered {span_version}" + (" (active)" if span.activate else " (not activated)"))
                    metrics["span"] = {
                        "model_version": span_version.pk,
                        "version": span_version.version,
                        "eval": span.metrics["eval"],
                        "examples": span.metrics["examples"],
                    }
                _finish(
                    self.round_id,
                    self.attempt,
                    RoundStatus.SUCCEEDED,
                    step="done",
                    progress=1.0,
                    metrics=metrics,
                    model_version=version,
                    log_tail=self.tail(),
                )
            registered = True
            self.notify("done")
        except _Lost:
            logger.warning(
                "round %s: attempt %s lost the round to another worker; stopping", self.round_id, self.attempt
            )
        except _Cancelled:
            self.log("cancelled on request")
            _finish(self.round_id, self.attempt, RoundStatus.CANCELLED, step="cancelled", log_tail=self.tail())
        except KeyboardInterrupt:
            # Ctrl-C in `manage.py train_reward`: the round stops here, so record that instead of leaving it
            # "running" until the reaper notices.
            self.log("interrupted")
            _finish(self.round_id, self.attempt, RoundStatus.CANCELLED, step="cancelled", log_tail=self.tail())
            raise
        except Exception as exc:
            # Anything else — bad data, a broken backbone, out of memory, the soft time limit — fails the round
            # with the error a person can act on; nothing was registered, the previous version stays active.
            logger.exception("round %s failed in step %r", self.round_id, self.step)
            self.log("".join(traceback.format_exception_only(exc)).strip())
            message = exc.message if isinstance(exc, RoundError) else f"{type(exc).__name__}: {exc}"
            _finish(
                self.round_id,
                self.attempt,
                RoundStatus.FAILED,
                step="failed",
                error=f"Failed while {self.step}: {message}",
                log_tail=self.tail(),
            )
        finally:
            heartbeat.stop()
            if not registered:
                for artifact in artifacts:
                    if artifact.exists():
                        shutil.rmtree(artifact, ignore_errors=True)

    def train_span_model(
        self, current: Round, config: RoundConfig, *, categories, rows, splits, backbone
    ) -> _Span | None:
        """Train and evaluate the span-reward model on the marked texts, split by prompt exactly like the pairs."""
        from training.ml.evaluate import compare_metrics
        from training.ml.pairs import snapshot_id_for
        from training.ml.span_rewards import SpanRewardConfig, segment_metrics, train_span_reward_model

        train = [row for row in rows if splits.get(row.prompt_id) != "eval"]
        held_out = [row for row in rows if splits.get(row.prompt_id) == "eval"]
        self.log(f"span marks: {len(train)} train / {len(held_out)} eval texts, categories {', '.join(categories)}")
        if not train:
            # Early in a project the few marked texts may all sit on held-out prompts; that is no reason to fail
            # the reward model's round.
            self.log("every text with span marks is on a held-out prompt: no span model this round")
            return None
        self.phase("training span model", progress=SPAN_PHASES["training"])
        self.train_range = (SPAN_PHASES["training"], PHASES["evaluating"])
        seed = config.seed if config.seed is not None else current.project_id
        span_config = SpanRewardConfig(
            backbone=backbone,
            categories=tuple(categories),
            max_length=config.max_length,
            learning_rate=config.span_learning_rate,
            num_epochs=config.span_epochs,
            batch_size=config.batch_size,
            seed=seed,
        )
        started = time.monotonic()
        model = train_span_reward_model([row.example for row in train], span_config, progress=self.training_step)
        train_seconds = time.monotonic() - started
        self.phase("evaluating span model")
        eval_metrics = segment_metrics(model, [row.example for row in held_out]) if held_out else None
        if eval_metrics:
            self.log(f"span model: held-out segment F1 {_fmt(eval_metrics['f1'])} on {eval_metrics['n']} decisions")
        previous = registry.active_version(project_id=current.project_id, kind=ModelKind.SPAN)
        previous_eval = (previous.metrics or {}).get("eval") if previous else None
        judgment_ids = sorted({row.judgment_id for row in rows})
        return _Span(
            model=model,
            snapshot_id=snapshot_id_for(judgment_ids),
            judgment_count=len(judgment_ids),
            activate=_should_activate(config, eval_metrics, previous_eval, key="f1"),
            metrics={
                "eval": eval_metrics,
                "vs_previous": compare_metrics(eval_metrics, previous_eval) if eval_metrics else {},
                "previous_version": previous.version if previous else None,
                "examples": {"train": len(train), "eval": len(held_out), "categories": list(categories)},
                "train": {"seconds": round(train_seconds, 2), "steps": self.train_total, "final_loss": self.loss},
            },
        )

    # --- progress -----------------------------------------------------------------------------------------------

    def phase(self, name: str, *, progress: float | None = None) -> None:
        self.step = name
        self.log(name)
        self.report(progress=PHASES.get(name, 0.0) if progress is None else progress, force=True)
        self.notify(name)

    def training_step(self, step: int, total: int, loss: float) -> None:
        self.train_total, self.loss = total, (None if loss != loss else round(loss, 5))  # NaN → None
        if self.on_progress is not None:
            self.on_progress("training", step, total, self.loss)
        now = time.monotonic()
        if now - self.last_write < self.interval and step < total:
            return
        self.log(f"step {step}/{total} loss {_fmt(self.loss)}")
        start, end = self.train_range
        self.report(progress=start + (end - start) * step / max(total, 1))

    def report(self, *, progress: float, force: bool = False) -> None:
        """Write step, progress, heartbeat and log tail, if we still own the round and it is not cancelled."""
        now = time.monotonic()
        if not force and now - self.last_write < self.interval:
            return
        self.last_write = now
        mine = Round.objects.filter(pk=self.round_id, status=RoundStatus.RUNNING, attempts=self.attempt)
        written = mine.filter(cancel_requested=False).update(
            step=self.step, progress=min(max(progress, 0.0), 1.0), heartbeat_at=timezone.now(), log_tail=self.tail()
        )
        if not written:
            raise _Cancelled() if mine.exists() else _Lost()

    def notify(self, name: str) -> None:
        if self.on_progress is not None:
            self.on_progress(name, 0, 0, None)

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self.log_lines.append(f"{stamp} {line}")
        logger.info("round %s: %s", self.round_id, line)

    def tail(self) -> str:
        return "\n".join(self.log_lines)


class _Heartbeat(threading.Thread):
    """Renews the round's heartbeat every ``stale_after / 5`` seconds while this attempt runs, so phases that
    report no progress for a while (loading a large backbone, evaluating, saving) are not taken for a dead
    worker. It dies with the process, which is the point: a killed worker's heartbeat stops. Its writes are
    fenced by the attempt like every other write."""

    def __init__(self, *, round_id: int, attempt: int):
        super().__init__(name=f"round-{round_id}-heartbeat", daemon=True)
        self.round_id, self.attempt = round_id, attempt
        self.every = stale_after().total_seconds() / 5
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                try:
                    Round.objects.filter(pk=self.round_id, status=RoundStatus.RUNNING, attempts=self.attempt).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    logger.warning("round %s: heartbeat write failed; retrying", self.round_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


@dataclass
class _Span:
    """A trained and evaluated span-reward model, waiting to be saved and registered with the round's result."""

    model: object
    metrics: dict
    snapshot_id: str
    judgment_count: int
    activate: bool


def _should_activate(config: RoundConfig, eval_metrics: dict | None, previous_eval: dict | None, *, key: str) -> bool:
    """``key``: the held-out metric that must not drop under ``require_no_regression`` (accuracy; F1 for spans)."""
    if not config.auto_activate:
        return False
    if config.require_no_regression and eval_metrics and previous_eval:
        now, before = eval_metrics.get(key), previous_eval.get(key)
        if now is not None and before is not None and now < before:
            return False
    return True


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _code_version() -> str:
    """The git commit of the running code, for the manifest beside the checkpoint (no subprocess)."""
    if os.environ.get("TANDEM_CODE_VERSION"):
        return os.environ["TANDEM_CODE_VERSION"]
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
            return "unknown"
        return head
    except OSError:
        return "unknown"


# --- dead workers --------------------------------------------------------------------------------------------------


def rounds_reap_stale() -> list[int]:
    """Requeue (or fail, when out of attempts) running rounds whose worker stopped sending heartbeats, and send
    again queued rounds whose message was lost.

    Returns the ids of the rounds it changed. Each change is conditional on the stale heartbeat it saw, so a
    worker that comes back to life at the same moment keeps its round (its next report renews the heartbeat,
    and the conditional update here then matches nothing).
    """
    now = timezone.now()
    cutoff = now - stale_after()
    seconds = int(stale_after().total_seconds())
    changed = []
    for r in Round.objects.filter(status=RoundStatus.RUNNING, heartbeat_at__lt=cutoff).only(
        "pk", "attempts", "cancel_requested"
    ):
        still_stale = Round.objects.filter(
            pk=r.pk, status=RoundStatus.RUNNING, attempts=r.attempts, heartbeat_at__lt=cutoff
        )
        if r.cancel_requested:
            done = still_stale.update(status=RoundStatus.CANCELLED, step="cancelled", finished_at=now)
        elif r.attempts >= max_attempts():
            done = still_stale.update(
                status=RoundStatus.FAILED,
                step="failed",
                finished_at=now,
                error=f"The worker running this round stopped reporting (no heartbeat for {seconds} s) after "
                f"{r.attempts} attempt(s); nothing was registered and the previous version stays active.",
            )
        else:
            with transaction.atomic():
                done = still_stale.update(status=RoundStatus.QUEUED, step="queued (resuming)", heartbeat_at=now)
                if done:
                    _send(r.pk)
        if done:
            logger.warning("round %s: worker silent for over %s s; %s", r.pk, seconds, "reaped")
            changed.append(r.pk)
    # A queued round nobody claimed for that long lost its message (a failed send, a broker that restarted
    # without persistence): send it again. Duplicates are harmless, the claim lets only one worker run it.
    # heartbeat_at marks when it was last (re)queued.
    for round_id in (
        Round.objects.filter(status=RoundStatus.QUEUED, created_at__lt=cutoff)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        .values_list("pk", flat=True)
    ):
        with transaction.atomic():
            if Round.objects.filter(pk=round_id, status=RoundStatus.QUEUED).update(heartbeat_at=now):
                _send(round_id)
                logger.warning("round %s: queued for over %s s without a worker; sent again", round_id, seconds)
                changed.append(round_id)
    return changed
