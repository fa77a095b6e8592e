"""Position-bias checks: a share of comparisons served again, later, to the annotator who judged them, with the
candidates in reversed order — a deliberate, recorded exception to "nobody sees a comparison twice" (issue 18).
An annotator who reads the answers gives the same answer again; one who clicks a side does not.

- **Scheduling.** When an ordinary (non-gold) judgment is written, :func:`check_draw` decides from a hash of
  (project, comparison, annotator) whether it gets a check — with probability ``Project.position_check_share`` —
  and after how many new tasks: uniform in ``position_check_after_min``..``position_check_after_max`` (5..20 by
  default: enough other tasks that the screen is not simply remembered, few enough that the check comes in the
  same sitting, before the annotator's habits change). Hashing, not ``random``, so a test or a re-run schedules the
  same checks.
- **Waiting.** ``wait`` counts down by one each time the queue hands the annotator a new task (ordinary or gold,
  the one fetched ahead included; a reload that resumes a lease is not a new task).
- **Serving.** Once due, the check is the next new task the annotator is given, before ordinary work: the same
  comparison id, the same task shape, the candidates in the reverse of the order the annotator saw
  (``Judgment.shown_order``). A served check is the annotator's current task (``next`` returns it until it is
  answered); ``next?ahead=1`` then returns the task after it.
- **Answering** goes through the judgment endpoint: the answer is kept on the check with whether it is
  *consistent* (the same winner, the same top of a ranking, or a tie again), and no ``Judgment`` is written, so
  ``judged``, ``wanted``, consensus and exports never see it.
- **Giving back.** A skipped check is not served again (``skipped``). A released one, or one whose lease ran out,
  comes back once, ``position_check_after_min`` new tasks later; the second time it is ``dropped``.
- **Cost.** With the share at 0 nothing here runs. Otherwise the claim's one statement (annotation.queue) also
  reads, through the ``positioncheck_open`` index, whether the annotator has an open check: a claim then costs one
  ``UPDATE`` of the waiting checks' count while a check waits;
  serving a due check reads the annotator's checks, marks one served and reads its content instead of the claim's
  one statement; a submission costs one ``INSERT`` when a check is drawn.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Assignment, AssignmentState, Project
from ..quality_models import PositionCheck, PositionCheckState
from ..selectors import candidates_order
from .answers import answer_choice

SEED = "tandem-position-check"
"""Salt of the scheduling hash: the same judgments draw the same checks on every run."""

DUE = 1
"""The claim's reading when the annotator has a check to serve (due, or served and not answered)."""
WAITING = 2
"""…when all their open checks are still waiting for new tasks."""

_OPEN = (PositionCheckState.WAITING, PositionCheckState.SERVED)


def open_checks_sql(*, project: str, annotator: str) -> str:
    """A scalar subquery: ``DUE``, ``WAITING`` or NULL for ``annotator`` in ``project`` (SQL expressions), one probe
    of the ``positioncheck_open`` partial index. The claim statement embeds it (annotation.queue)."""
    return f"""(SELECT MIN(CASE WHEN pc.state = 'served' OR pc.wait = 0 THEN {DUE} ELSE {WAITING} END)
    FROM annotation_positioncheck pc
    WHERE pc.annotator_id = {annotator} AND pc.project_id = {project} AND pc.state IN ('waiting', 'served'))"""


class CheckKeyReused(Exception):
    """The idempotency key of an answered check came again with a different answer."""


def check_draw(*, project: Project, comparison_id: int, annotator_id: int) -> int | None:
    """How many new tasks later this judgment's comparison comes back, or None when it gets no check."""
    share = project.position_check_share
    if share <= 0:
        return None
    digest = hashlib.blake2b(f"{SEED}:{project.pk}:{comparison_id}:{annotator_id}".encode(), digest_size=16).digest()
    if int.from_bytes(digest[:8]) / 2**64 >= share:
        return None
    low, high = project.position_check_after_min, project.position_check_after_max
    return low + int.from_bytes(digest[8:]) % (high - low + 1)


def position_check_schedule(*, project: Project, judgment_id: int, comparison_id: int, annotator_id: int) -> bool:
    """Schedule a check of a new ordinary judgment if the draw says so; returns whether one was. One ``INSERT``
    when drawn (idempotent: one check per judgment), nothing otherwise."""
    wait = check_draw(project=project, comparison_id=comparison_id, annotator_id=annotator_id)
    if wait is None:
        return False
    PositionCheck.objects.bulk_create(
        [
            PositionCheck(
                project_id=project.pk,
                comparison_id=comparison_id,
                annotator_id=annotator_id,
                judgment_id=judgment_id,
                wait=wait,
            )
        ],
        ignore_conflicts=True,
    )
    return True


@dataclass(frozen=True)
class CheckTurn:
    """What the claim does for an annotator with a check due: show ``check`` (``resumed`` when it was already
    served), or make the ordinary claim with ``ahead``; ``advance``: waiting checks count the new task, if any."""

    check: PositionCheck | None = None
    resumed: bool = False
    ahead: bool = False
    advance: bool = False


def position_check_turn(*, project: Project, annotator_id: int, ahead: bool, now: datetime) -> CheckTurn:
    """Decide the claim of an annotator who has a check due or served (``DUE``).

    The served check leads the annotator's tasks: ``next`` returns it, ``next?ahead=1`` the ordinary task after it.
    A due check is served when the annotator is to get a new task in the asked place (they hold no more live
    leases than ``ahead``), instead of ordinary work."""
    # With the count of the annotator's live leases riding along: one query.
    held = (
        Assignment.objects.filter(
            annotator_id=annotator_id, project_id=project.pk, state=AssignmentState.LEASED, expires_at__gt=now
        )
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    checks = list(
        PositionCheck.objects.filter(project_id=project.pk, annotator_id=annotator_id, state__in=_OPEN)
        .annotate(held=Coalesce(Subquery(held), 0))
        .select_related("judgment", "comparison")
        .order_by("id")
    )
    served = None
    for check in checks:
        if check.state == PositionCheckState.SERVED:
            if check.expires_at <= now:
                _give_back(check, skipped=False, after=project.position_check_after_min)
            elif served is None:
                served = check
    waiting = [c for c in checks if c.state == PositionCheckState.WAITING]
    advance = any(c.wait > 0 for c in waiting)
    if served is not None:
        return CheckTurn(check=served, resumed=True) if not ahead else CheckTurn(ahead=False, advance=advance)
    due = next((c for c in waiting if c.wait == 0), None)
    if due is None:
        return CheckTurn(ahead=ahead, advance=advance)
    if due.held <= int(ahead) and _serve(due, project=project, now=now):
        return CheckTurn(check=due)
    return CheckTurn(ahead=ahead, advance=advance)


def _serve(check: PositionCheck, *, project: Project, now: datetime) -> bool:
    """Mark the check served, the candidates swapped; False when a concurrent request of the annotator served or
    gave it back first."""
    ids = list(check.comparison.candidate_ids)
    seen = list(check.judgment.shown_order or [])
    if sorted(seen) != sorted(ids):
        # An API client that did not say what it showed: it was shown the server's order.
        seen = candidates_order(ids, comparison_id=check.comparison_id, annotator_id=check.annotator_id)
    fields = {
        "state": PositionCheckState.SERVED,
        "served_at": now,
        "expires_at": now + timedelta(seconds=project.lease_seconds),
        "served_order": seen[::-1],
    }
    if not PositionCheck.objects.filter(pk=check.pk, state=PositionCheckState.WAITING).update(**fields):
        return False
    for name, value in fields.items():
        setattr(check, name, value)
    return True


def position_checks_advance(*, project_id: int, annotator_id: int) -> None:
    """The annotator was given a new task: their waiting checks are one task nearer."""
    PositionCheck.objects.filter(
        project_id=project_id, annotator_id=annotator_id, state=PositionCheckState.WAITING, wait__gt=0
    ).update(wait=F("wait") - 1)


def _give_back(check: PositionCheck, *, skipped: bool, after: int) -> None:
    if skipped:
        fields = {"state": PositionCheckState.SKIPPED}
    elif check.given_back >= 1:
        fields = {"state": PositionCheckState.DROPPED, "given_back": check.given_back + 1}
    else:
        fields = {"state": PositionCheckState.WAITING, "wait": after, "given_back": 1, "expires_at": None}
    if PositionCheck.objects.filter(pk=check.pk, state=PositionCheckState.SERVED).update(**fields):
        for name, value in fields.items():
            setattr(check, name, value)


def position_check_give_back(*, comparison_id: int, annotator_id: int, skipped: bool) -> bool:
    """The annotator skipped (``skipped``) or released the comparison: if it is a served check of theirs, give it
    back (see the module's docstring) and return True; else False (the caller's ordinary answer stands)."""
    # A skip retried after it went through is a no-op, as for any comparison.
    states = (PositionCheckState.SERVED, PositionCheckState.SKIPPED) if skipped else (PositionCheckState.SERVED,)
    check = (
        PositionCheck.objects.filter(comparison_id=comparison_id, annotator_id=annotator_id, state__in=states)
        .select_related("project")
        .first()
    )
    if check is None:
        return False
    if check.state == PositionCheckState.SERVED:
        _give_back(check, skipped=skipped, after=check.project.position_check_after_min)
    return True


def position_check_answer(*, comparison_id: int, annotator_id: int, answer, idempotency_key: str):
    """Record the annotator's answer to their served check of this comparison: ``(check, created)``, or None when
    they have no such check (nor answered one with this key). ``answer`` is a ``JudgmentInput``, already checked
    against the schema. A retry with the same key returns the check (``created=False``); with the same key and a
    different answer it raises :class:`CheckKeyReused`."""
    with transaction.atomic():
        check = (
            PositionCheck.objects.select_for_update()
            .select_related("judgment")
            .filter(
                comparison_id=comparison_id,
                annotator_id=annotator_id,
                state__in=(PositionCheckState.SERVED, PositionCheckState.ANSWERED),
            )
            .first()
        )
        if check is None:
            return None
        given = dataclasses.asdict(answer)
        if check.state == PositionCheckState.ANSWERED:
            if check.idempotency_key != idempotency_key:
                return None
            if _what(check.answer) != _what(given):
                raise CheckKeyReused
            return check, False
        first = check.judgment
        check.answer = given
        check.idempotency_key = idempotency_key
        check.answered_at = timezone.now()
        check.consistent = answer_choice(first.winner_id, first.tie, first.ranking) == answer_choice(
            answer.winner, answer.tie, answer.ranking
        )
        check.state = PositionCheckState.ANSWERED
        check.save(update_fields=["answer", "idempotency_key", "answered_at", "consistent", "state"])
        return check, True


def _what(answer: dict) -> dict:
    """The answer itself, not how long it took or the order it was shown in (a retry may differ in those)."""
    return {k: v for k, v in answer.items() if k not in ("time_spent_ms", "shown_order")}
