"""The annotation queue: claim the next comparison, skip it, release it, expire leases.

Correctness rests on three facts (DESIGN §4):

1. **A claim changes the comparison row itself** (``leased = leased + 1``) in the
   statement that picks it. On Postgres, a concurrent claimer that reached the
   same row either skips it (``SKIP LOCKED`` while the first holds the lock) or,
   once the first commits, re-checks ``judged + leased < wanted`` against the new
   row version under READ COMMITTED and moves on. The check constraint
   ``judged <= wanted - leased`` is the backstop. On SQLite, writers are
   serialised (``BEGIN IMMEDIATE``), so the same statements are correct as they
   stand.
2. **"Not judged or skipped by me"** is one probe of the (comparison, annotator)
   unique index on ``Assignment``: every lease, submission and skip leaves a row.
3. **The walk is one partial index** (``comparison_open_queue``: open comparisons
   of a project in priority order, then ``serve_order``), so a claim never sorts the open set.
   ``serve_order`` is a hash fixed at write time (:func:`serve_order`): equal priorities
   come in a stable pseudo-random order, so the eval split's prompts are judged alongside
   the train ones (a first round has held-out pairs) and one prompt's pairs are spread
   out, unless the project asks to serve them together.
4. **At most two live leases per annotator and project**: the task on screen
   and one fetched ahead (``ahead=True``), each in its own ``slot`` (0 or 1, a
   check constraint) of the unique partial index
   ``assignment_live_slot_per_project``; so no race can make a third. And **a claim never waits on a lock**
   that a submission, skip or the reaper holds (it takes the rows it needs with
   ``SKIP LOCKED``), so one annotator's concurrent requests neither double-lease
   nor deadlock (``_PG_CLAIM``; tests/annotation/test_queue_races.py).
5. **Position checks** (``annotation.quality.position``) are the one deliberate
   exception to "not judged by me": a due check is served instead of the next new
   task, and costs nothing while a project has them off.

The claim is one statement on Postgres (one round trip, one commit), which also reads the
project's settings and, for the API, checks that the annotator may be served there
(``member``: annotation.access, a gold pause); only the rare turns — a position check due,
a gold check's turn, nothing found — and the reason for a refusal take more statements. On
SQLite the same steps run as a few statements inside one immediate transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .access import Refused, member_sql
from .models import Assignment, AssignmentState, Comparison, Project
from .quality import gold, position
from .selectors import (
    TASK_CONTENT_SQL_POSTGRES,
    TaskCandidate,
    TaskContent,
    candidates_order,
    partial_instance,
    task_content_from_rows,
)
from .statements import compact_sql, prepared_cursor

# Live assignment states that keep a comparison from being served to the same
# annotator again. EXPIRED and RELEASED rows may be claimed anew.
_BLOCKING_STATES = (AssignmentState.LEASED, AssignmentState.SUBMITTED, AssignmentState.SKIPPED)
EXPIRE_BATCH = 1000


def serve_order(*, together: bool, prompt_id: int, external_id: str) -> int:
    """Where a new comparison stands among equal priorities (``Comparison.serve_order``).

    A hash of the comparison's external id spreads prompts and their pairs evenly;
    with ``together`` (``Project.serve_prompt_pairs_together``), a hash of the prompt,
    so its pairs share a place and come one after another (by id). 31 bits: an
    integer column on every database.
    """
    key = f"prompt:{prompt_id}" if together else external_id
    return zlib.crc32(key.encode()) >> 1


class QueueError(Exception):
    """A queue action that cannot be done; ``code`` is stable for API clients."""

    code = "queue_error"

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class NoLiveLease(QueueError):
    code = "no_live_lease"


class AlreadyAnswered(QueueError):
    code = "already_answered"


@dataclass(frozen=True)
class Claim:
    comparison_id: int
    expires_at: datetime
    resumed: bool  # True when this is the annotator's existing live lease
    content: TaskContent | None = None  # the task itself, when the claim could read it in the same statement
    # Candidate ids left to right, where the claim decides them (a position check's swap); else candidates_order.
    shown_order: tuple[int, ...] | None = None


class Paused(Exception):
    """The annotator is paused in the project (annotation.quality.gold); ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def comparison_claim(
    *,
    project_id: int,
    annotator_id: int,
    ahead: bool = False,
    now: datetime | None = None,
    member: bool = False,
) -> Claim | None:
    """Lease the next comparison in the project to the annotator, or return ``None``
    when nothing is left for them.

    An annotator holding a live lease in the project gets their oldest one back (a
    reload must not burn a second task). With ``ahead``, the task after that one:
    the second live lease if they hold two, else a new lease (the prefetch), so
    an annotator holds at most two. Gold checks are served at the project's ``gold_share``;
    position checks, when due, before new work (annotation.quality.position).

    With ``member`` (the API's call), only for a member who may annotate there (annotation.access) and is not
    paused (annotation.quality.gold): raises :class:`~annotation.access.Refused` or :class:`Paused` otherwise.
    Both checks, the project's settings and the open position checks are read by the claim's own statement.
    """
    now = now or timezone.now()
    dice = random.random()  # below the project's gold share: this new task is a gold check's turn
    params = {
        "project": project_id,
        "user": annotator_id,
        "ahead": int(ahead),
        "gold": False,
        "now": now,
        "gate": member,
        "turn": True,
        "dice": dice,
    }
    read = _claim_one(params)
    if read is None or (member and not read.allowed):
        if member:
            raise Refused
        return None
    if member and read.paused is not None:
        raise Paused(read.paused)
    if read.claim is not None:
        if read.checks == position.WAITING and not read.claim.resumed:
            position.position_checks_advance(project_id=project_id, annotator_id=annotator_id)
        return read.claim
    return _claim_turn(read, annotator_id=annotator_id, ahead=ahead, now=now, dice=dice)


def claim_candidates(claim: Claim, content: TaskContent, *, annotator_id: int) -> list[TaskCandidate]:
    """The claimed task's candidates, left to right as the annotator is to see them."""
    order = claim.shown_order or candidates_order(
        [c.id for c in content.candidates], comparison_id=claim.comparison_id, annotator_id=annotator_id
    )
    return content.in_order(order)


def _claim_turn(read: _Read, *, annotator_id: int, ahead: bool, now: datetime, dice: float) -> Claim | None:
    """The claims the first statement leaves to Python: a position check due, a gold check's turn, or no open
    comparison found (expired leases may be all that stood in the way)."""
    project = read.project
    advance = read.checks == position.WAITING
    tried_regular = True  # the first statement looked for ordinary work unless a check or gold had the turn
    if read.checks == position.DUE:
        turn = position.position_check_turn(project=project, annotator_id=annotator_id, ahead=ahead, now=now)
        if turn.check is not None:
            check = turn.check
            return Claim(
                comparison_id=check.comparison_id,
                expires_at=check.expires_at,
                resumed=turn.resumed,
                shown_order=tuple(check.served_order),
            )
        ahead, advance, tried_regular = turn.ahead, turn.advance, False
    pools = [False]
    if dice < project.gold_share:
        tried_regular = False
        # A gold check only between real tasks: an annotator with nothing real
        # left is done, not handed checks alone.
        if _regular_work_left(project.pk, annotator_id):
            pools = [True, False]
    params = {
        "project": project.pk,
        "user": annotator_id,
        "ahead": int(ahead),
        "now": now,
        "gate": False,
        "turn": False,
        "dice": dice,
    }
    claim = None
    for is_gold in pools:
        if is_gold or not tried_regular:
            claim = _claim_one({**params, "gold": is_gold}).claim
        if claim is None and leases_expire(now=now):
            # Expired leases may be all that stood between this annotator and work.
            claim = _claim_one({**params, "gold": is_gold}).claim
        if claim is not None:
            break
    if advance and claim is not None and not claim.resumed:
        position.position_checks_advance(project_id=project.pk, annotator_id=annotator_id)
    return claim


@dataclass(frozen=True)
class _Read:
    """What a claim statement read besides its claim: the project's settings, and with ``gate``/``turn`` whether
    the annotator may be served there (``allowed``, ``paused``) and their open position checks (``checks``)."""

    project: Project  # id, lease, gold and position-check settings loaded
    allowed: bool | None
    paused: str | None
    checks: int | None
    raced: bool  # a comparison was picked but its lease could not be written: try again
    claim: Claim | None


# The project's row, read by the claim's statement on both databases: its settings, and (with %(gate)s) whether
# the annotator may be served in it, (with %(turn)s) their open position checks. At a position-check share of 0
# the CASE never runs its subquery.
_PROJECT_READ = f"""
SELECT p.id, p.lease_seconds, p.gold_share, p.position_check_share, p.position_check_after_min,
    CASE WHEN %(gate)s THEN {member_sql(project="p.id", user="%(user)s")} END AS allowed,
    CASE WHEN %(gate)s THEN {gold.pause_reason_sql(project="p.id", annotator="%(user)s")} END AS paused,
    CASE WHEN %(turn)s AND p.position_check_share > 0
        THEN {position.open_checks_sql(project="p.id", annotator="%(user)s")} END AS checks
FROM annotation_project p
WHERE p.id = %(project)s
"""


def _read(row, claim: Claim | None = None, raced: bool = False) -> _Read:
    project = partial_instance(
        Project,
        id=row[0],
        lease_seconds=row[1],
        gold_share=row[2],
        position_check_share=row[3],
        position_check_after_min=row[4],
    )
    allowed = None if row[5] is None else bool(row[5])
    return _Read(project=project, allowed=allowed, paused=row[6], checks=row[7], raced=raced, claim=claim)


def _may_claim(read: _Read, params: dict) -> bool:
    """Whether the statement goes on to claim: the gate passed (when asked) and no position check has the turn.
    (The Postgres statement's ``go``; SQLite's twin asks this.)"""
    if params["gate"] and not (read.allowed and read.paused is None):
        return False
    return not (params["turn"] and read.checks == position.DUE)


# Read the project (gate, settings, open checks: `project`, `go`), then the annotator's live lease if any (the
# oldest; with `ahead`, the second oldest); else pick, lease and count the next open comparison, in the slot the
# held lease (if any) leaves free; and return the task's content. One statement, so one commit in autocommit mode.
# Nothing past `go` runs for a refused or paused annotator, nor while a position check is due; with %(turn)s no
# new task is picked when the dice gave the turn to a gold check (Python serves those: _claim_turn).
#
# Locks, and why this statement never waits on a lock that a submission, skip or
# the lease reaper holds (they lock an assignment, then its comparison; a claim
# that waited on an assignment while holding its comparison could deadlock with
# them): the pick takes the annotator's own expired or released assignment of a
# comparison with SKIP LOCKED *before* the comparison row itself (also SKIP
# LOCKED), so a row busy elsewhere is skipped, never waited for. Locking it also
# re-reads its newest version: a late submission or skip that committed after this
# statement's snapshot is seen, so the upsert never turns a submitted or skipped
# assignment back into a lease (and its WHERE is the backstop). The comparison's
# `leased` count goes up only when the lease was written. Two concurrent claims
# that chose the same free slot break the unique index
# `assignment_live_slot_per_project`: the caller retries and gets the other's lease.
#
# The comparison is locked FOR NO KEY UPDATE, the lock its UPDATE takes anyway:
# it does not conflict with the KEY SHARE locks that foreign-key checks of new
# assignments and judgments take on it at commit (FOR UPDATE did, and deadlocked
# with them). "No assignment yet" is a scalar subquery, one index probe per row
# walked: written as NOT EXISTS beside the OR, the planner hashed all of the
# annotator's assignments on every claim.
_PG_CLAIM = (
    """
WITH project AS ("""
    + _PROJECT_READ
    + f"""), go AS (
    SELECT lease_seconds, gold_share FROM project
    WHERE (NOT %(gate)s OR (allowed AND paused IS NULL))
      AND (NOT %(turn)s OR checks IS DISTINCT FROM {position.DUE})
), held AS (
    SELECT a.comparison_id, a.expires_at, a.slot, a.leased_at, a.id FROM annotation_assignment a
    WHERE a.annotator_id = %(user)s AND a.project_id = %(project)s
      AND a.state = 'leased' AND a.expires_at > %(now)s
      AND EXISTS (SELECT 1 FROM go)
), live AS (
    SELECT comparison_id, expires_at FROM held ORDER BY leased_at, id OFFSET %(ahead)s LIMIT 1
), pick AS (
    SELECT c.id FROM annotation_comparison c
    WHERE NOT EXISTS (SELECT 1 FROM live)
      AND EXISTS (SELECT 1 FROM go WHERE NOT %(turn)s OR %(dice)s >= go.gold_share)
      AND c.project_id = %(project)s AND c.status = 'open' AND c.is_gold = %(gold)s
      AND c.judged + c.leased < c.wanted
      AND ((SELECT a.state FROM annotation_assignment a
            WHERE a.comparison_id = c.id AND a.annotator_id = %(user)s) IS NULL
           OR EXISTS (
              SELECT 1 FROM annotation_assignment a
              WHERE a.comparison_id = c.id AND a.annotator_id = %(user)s
                AND a.state IN ('expired', 'released')
              FOR UPDATE SKIP LOCKED))
    ORDER BY c.priority DESC, c.serve_order, c.id
    LIMIT 1
    FOR NO KEY UPDATE OF c SKIP LOCKED
), leased AS (
    INSERT INTO annotation_assignment
        (project_id, comparison_id, annotator_id, state, leased_at, expires_at, updated_at, slot)
    SELECT %(project)s, pick.id, %(user)s, 'leased', %(now)s,
           %(now)s + make_interval(secs => (SELECT lease_seconds FROM go)), %(now)s,
           -- the slot the one held lease leaves free; slot 0 when none is held
           (SELECT COALESCE(1 - MIN(slot), 0) FROM held)
    FROM pick
    ON CONFLICT (comparison_id, annotator_id) DO UPDATE
        SET state = 'leased', leased_at = EXCLUDED.leased_at,
            expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at, slot = EXCLUDED.slot
        WHERE annotation_assignment.state IN ('expired', 'released')
    RETURNING comparison_id, expires_at
), claimed AS (
    UPDATE annotation_comparison c SET leased = c.leased + 1
    FROM leased WHERE c.id = leased.comparison_id
    RETURNING c.id
), claim AS (
    SELECT comparison_id, expires_at, true AS resumed FROM live
    UNION ALL
    SELECT leased.comparison_id, leased.expires_at, false FROM leased JOIN claimed ON claimed.id = leased.comparison_id
)
-- The project's row, whether a pick raced (picked, not leased: its assignment changed after the snapshot, in a
-- way the lock did not see), and the claim with the task's content, one row per candidate, so serving a task is
-- one round trip. (The comparison row read there is the statement's snapshot; its content columns never change.)
SELECT project.id, project.lease_seconds, project.gold_share, project.position_check_share,
       project.position_check_after_min, project.allowed, project.paused, project.checks,
       EXISTS (SELECT 1 FROM pick) AND NOT EXISTS (SELECT 1 FROM claimed) AS raced,
       served.*
FROM project
LEFT JOIN LATERAL (
    SELECT claim.comparison_id, claim.expires_at, claim.resumed, content.*
    FROM claim
    CROSS JOIN LATERAL ("""
    + TASK_CONTENT_SQL_POSTGRES.replace("%s", "claim.comparison_id")
    + """) AS content
) AS served ON true
"""
)

_PG_CLAIM = compact_sql(_PG_CLAIM)

_REGULAR_WORK_LEFT = """
SELECT 1 FROM annotation_comparison c
WHERE c.project_id = %(project)s AND c.status = 'open' AND c.is_gold = false
  AND c.judged + c.leased < c.wanted
  AND NOT EXISTS (
      SELECT 1 FROM annotation_assignment a
      WHERE a.comparison_id = c.id AND a.annotator_id = %(user)s
        AND a.state IN ('leased', 'submitted', 'skipped'))
LIMIT 1
"""


def _regular_work_left(project_id: int, user_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(_REGULAR_WORK_LEFT, {"project": project_id, "user": user_id})
        return cursor.fetchone() is not None


_SQLITE_HELD = """
SELECT comparison_id, expires_at, slot FROM annotation_assignment
WHERE annotator_id = %(user)s AND project_id = %(project)s AND state = 'leased' AND expires_at > %(now)s
ORDER BY leased_at, id
"""

_SQLITE_PICK_AND_LEASE = """
UPDATE annotation_comparison SET leased = leased + 1
WHERE id = (
    SELECT c.id FROM annotation_comparison c
    WHERE c.project_id = %(project)s AND c.status = 'open' AND c.is_gold = %(gold)s
      AND c.judged + c.leased < c.wanted
      AND NOT EXISTS (
          SELECT 1 FROM annotation_assignment a
          WHERE a.comparison_id = c.id AND a.annotator_id = %(user)s
            AND a.state IN ('leased', 'submitted', 'skipped'))
    ORDER BY c.priority DESC, c.serve_order, c.id
    LIMIT 1)
RETURNING id
"""

_SQLITE_UPSERT_LEASE = """
INSERT INTO annotation_assignment
    (project_id, comparison_id, annotator_id, state, leased_at, expires_at, updated_at, slot)
VALUES (%(project)s, %(comparison)s, %(user)s, 'leased', %(now)s, %(expires)s, %(now)s, %(slot)s)
ON CONFLICT (comparison_id, annotator_id) DO UPDATE
    SET state = 'leased', leased_at = excluded.leased_at,
        expires_at = excluded.expires_at, updated_at = excluded.updated_at, slot = excluded.slot
    WHERE annotation_assignment.state IN ('expired', 'released')
"""


CLAIM_ATTEMPTS = 3


def _claim_one(params: dict) -> _Read | None:
    """One claim statement (None: no such project), tried again when it lost a race: a taken lease slot of the
    annotator (a concurrent claim, or a run-out lease the reaper has not yet expired: expired here first), or a
    pick whose assignment changed under it."""
    claim_once = _claim_postgres if connection.vendor == "postgresql" else _claim_portable
    for _ in range(CLAIM_ATTEMPTS - 1):
        try:
            read = claim_once(params)
        except IntegrityError:
            leases_expire(now=params["now"])
            continue
        if read is None or not read.raced:
            return read
    return claim_once(params)


def _claim_postgres(params: dict) -> _Read | None:
    with single_statement(), prepared_cursor() as cursor:
        cursor.execute(_PG_CLAIM, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    first = rows[0]
    comparison_id, expires, resumed = first[9:12]
    if comparison_id is None:
        return _read(first[:8], raced=first[8])
    content = task_content_from_rows(comparison_id, [r[12:] for r in rows])
    claim = Claim(comparison_id=comparison_id, expires_at=expires, resumed=resumed, content=content)
    return _read(first[:8], claim=claim)


def _claim_portable(params: dict) -> _Read | None:
    """SQLite serialises writers (``BEGIN IMMEDIATE``), so these steps need no locks."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_PROJECT_READ, params)
            row = cursor.fetchone()
            if row is None:
                return None
            read = _read(row)
            if not _may_claim(read, params):
                return read
            cursor.execute(_SQLITE_HELD, params)
            held = cursor.fetchall()
            if len(held) > params["ahead"]:
                comparison_id, expires, _ = held[params["ahead"]]
                claim = Claim(comparison_id=comparison_id, expires_at=_aware(expires), resumed=True)
                return dataclasses.replace(read, claim=claim)
            if params["turn"] and params["dice"] < read.project.gold_share:
                return read
            cursor.execute(_SQLITE_PICK_AND_LEASE, params)
            picked = cursor.fetchone()
            if picked is None:
                return read
            free_slot = 1 - held[0][2] if held else 0
            expires = params["now"] + timedelta(seconds=read.project.lease_seconds)
            cursor.execute(
                _SQLITE_UPSERT_LEASE, {**params, "comparison": picked[0], "slot": free_slot, "expires": expires}
            )
            if cursor.rowcount != 1:
                raise _ClaimRaced(read)  # leaves the atomic block: the count above is rolled back
            claim = Claim(comparison_id=picked[0], expires_at=expires, resumed=False)
            return dataclasses.replace(read, claim=claim)
    except _ClaimRaced as raced:
        return dataclasses.replace(raced.read, raced=True)


class _ClaimRaced(Exception):
    """SQLite's twin picked a comparison whose lease it could not write."""

    def __init__(self, read: _Read):
        self.read = read
        super().__init__()


def single_statement():
    """Context for one self-contained SQL statement: in autocommit mode the statement
    is its own transaction (no BEGIN/COMMIT round trips); inside an outer
    transaction it gets a savepoint, so a failure does not abort the outer one."""
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def _aware(value) -> datetime:
    """SQLite hands raw SQL timestamps back as text or naive datetimes (stored in UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def leases_expire(*, now: datetime | None = None, batch: int = EXPIRE_BATCH) -> int:
    """Return expired leases to the pool; returns how many were expired.

    Marks each run-out lease ``expired`` and takes it off its comparison's
    ``leased`` count in the same transaction. A submission racing with this
    either locked the assignment first (and it is no longer ``leased``) or finds
    it expired and is handled as a lost lease (annotation.judgments).
    """
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                """
                UPDATE annotation_assignment SET state = 'expired', updated_at = %(now)s
                WHERE id IN (
                    SELECT id FROM annotation_assignment
                    WHERE state = 'leased' AND expires_at <= %(now)s
                    ORDER BY expires_at LIMIT %(batch)s
                    FOR UPDATE SKIP LOCKED)
                  AND state = 'leased'
                RETURNING comparison_id
                """,
                {"now": now, "batch": batch},
            )
        else:
            cursor.execute(
                """
                UPDATE annotation_assignment SET state = 'expired', updated_at = %(now)s
                WHERE id IN (
                    SELECT id FROM annotation_assignment
                    WHERE state = 'leased' AND expires_at <= %(now)s
                    ORDER BY expires_at LIMIT %(batch)s)
                RETURNING comparison_id
                """,
                {"now": now, "batch": batch},
            )
        expired_per_comparison: dict[int, int] = {}
        for (comparison_id,) in cursor.fetchall():
            expired_per_comparison[comparison_id] = expired_per_comparison.get(comparison_id, 0) + 1
        for comparison_id, count in sorted(expired_per_comparison.items()):
            Comparison.objects.filter(pk=comparison_id).update(leased=F("leased") - count)
    return sum(expired_per_comparison.values())


def comparison_skip(*, comparison: Comparison, annotator_id: int) -> None:
    """Record that the annotator skipped the comparison; it is never served to them again."""
    _lease_end_or_check(comparison=comparison, annotator_id=annotator_id, outcome=AssignmentState.SKIPPED)


def lease_release(*, comparison: Comparison, annotator_id: int) -> None:
    """Give a live lease back unanswered; the comparison may be served to the annotator again."""
    _lease_end_or_check(comparison=comparison, annotator_id=annotator_id, outcome=AssignmentState.RELEASED)


def _lease_end_or_check(*, comparison: Comparison, annotator_id: int, outcome: AssignmentState) -> None:
    try:
        _lease_end(comparison=comparison, annotator_id=annotator_id, outcome=outcome)
    except AlreadyAnswered:
        # A comparison the annotator answered is on their screen again only as a position check: that is what
        # they skip or release (annotation.quality.position), looked up only here, off the ordinary path.
        skipped = outcome == AssignmentState.SKIPPED
        if not position.position_check_give_back(
            comparison_id=comparison.pk, annotator_id=annotator_id, skipped=skipped
        ):
            raise


def _lease_end(*, comparison: Comparison, annotator_id: int, outcome: AssignmentState) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Make sure the row exists before locking it: two concurrent skips of a
        # comparison never served would otherwise both find nothing to lock and
        # both insert. A new row starts as "released", which blocks nothing.
        Assignment.objects.bulk_create(
            [
                Assignment(
                    project_id=comparison.project_id,
                    comparison_id=comparison.pk,
                    annotator_id=annotator_id,
                    state=AssignmentState.RELEASED,
                    leased_at=now,
                    expires_at=now,
                )
            ],
            ignore_conflicts=True,
        )
        assignment = Assignment.objects.select_for_update().get(comparison=comparison, annotator_id=annotator_id)
        if assignment.state == AssignmentState.SUBMITTED:
            raise AlreadyAnswered("You have already submitted a judgment for this comparison.")
        if assignment.state == AssignmentState.SKIPPED:
            if outcome == AssignmentState.SKIPPED:
                return  # skipping twice is a no-op, as a retried request must be
            raise NoLiveLease("You skipped this comparison; there is no lease to release.")
        live = assignment.state == AssignmentState.LEASED
        if outcome == AssignmentState.RELEASED and not live:
            raise NoLiveLease("You hold no live lease on this comparison (it may have expired).")
        if live:
            Comparison.objects.filter(pk=comparison.pk).update(leased=F("leased") - 1)
        assignment.state = outcome
        assignment.save(update_fields=["state", "updated_at"])
