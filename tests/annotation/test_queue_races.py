"""Races between one annotator's own requests on Postgres: a claim (``next``) that
runs while the same annotator's late submission or second claim commits.

Postgres only: SQLite serialises writers, so these interleavings cannot happen
there. Each test forces its interleaving with a second connection that holds a
lock or an uncommitted row, and watches ``pg_stat_activity`` to know when the
requests under test are waiting on it.
"""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Assignment, AssignmentState, Comparison, Judgment

from ..concurrency import in_thread
from ..factories import UserFactory, make_comparison

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks and snapshots of Postgres"),
]


def sessions(condition: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            f"AND {condition}"
        )
        return cursor.fetchone()[0]


def wait_for(condition: str, count: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sessions(condition) >= count:
            return True
        time.sleep(0.002)
    return False


WAITING_ON_A_LOCK = "wait_event_type = 'Lock'"
CLAIMING = "state = 'active' AND query LIKE '%%WITH project AS (%%'"


def submit(comparison, user):
    comparison = Comparison.objects.select_related("project").get(pk=comparison.pk)
    return judgment_submit(
        comparison_id=comparison.pk,
        annotator_id=user.pk,
        answer=JudgmentInput(winner=comparison.candidate_ids[0]),
        idempotency_key=f"{user.pk}-{comparison.pk}",
    )


def lease_run_out(project, user, comparison):
    claim = queue.comparison_claim(project_id=project.pk, annotator_id=user.pk)
    assert claim.comparison_id == comparison.pk
    assert queue.leases_expire(now=timezone.now() + timedelta(seconds=project.lease_seconds + 1)) == 1


def test_two_concurrent_claims_by_one_annotator_hold_one_lease(project, other):
    """Both claims pass the "no live lease" test before either commits (here: both
    wait on rows another transaction is inserting). One lease, served to both."""
    first, second = make_comparison(project), make_comparison(project)
    annotator = UserFactory()
    now = timezone.now()
    with other.cursor() as cursor:
        for comparison in (first, second):
            cursor.execute(
                "INSERT INTO annotation_assignment"
                " (project_id, comparison_id, annotator_id, state, leased_at, expires_at, updated_at)"
                " VALUES (%s, %s, %s, 'released', %s, %s, %s)",
                [project.pk, comparison.pk, annotator.pk, now, now, now],
            )
    claims = [in_thread(queue.comparison_claim, project_id=project.pk, annotator_id=annotator.pk) for _ in range(2)]
    assert wait_for(WAITING_ON_A_LOCK, 2), "the claims did not both reach the uncommitted rows"
    other.commit()
    results = [join() for join in claims]
    assert [error for _, error in results] == [None, None]
    served = {claim.comparison_id for claim, _ in results}
    assert len(served) == 1, "one annotator was given two leases at once"
    assert Assignment.objects.filter(annotator=annotator, state=AssignmentState.LEASED).count() == 1
    assert sorted(Comparison.objects.values_list("leased", flat=True)) == [0, 1]


def test_two_concurrent_prefetches_by_one_annotator_make_no_third_lease(project, other):
    """The annotator holds the current task; two prefetches (``ahead``) both pass
    the "one lease held" test before either commits and pick the same free slot.
    The slot index refuses the second lease: two live leases, one prefetched task
    served to both."""
    current, first, second = make_comparison(project, priority=1), make_comparison(project), make_comparison(project)
    annotator = UserFactory()
    assert queue.comparison_claim(project_id=project.pk, annotator_id=annotator.pk).comparison_id == current.pk
    now = timezone.now()
    with other.cursor() as cursor:
        for comparison in (first, second):
            cursor.execute(
                "INSERT INTO annotation_assignment"
                " (project_id, comparison_id, annotator_id, state, leased_at, expires_at, updated_at)"
                " VALUES (%s, %s, %s, 'released', %s, %s, %s)",
                [project.pk, comparison.pk, annotator.pk, now, now, now],
            )
    claims = [
        in_thread(queue.comparison_claim, project_id=project.pk, annotator_id=annotator.pk, ahead=True)
        for _ in range(2)
    ]
    assert wait_for(WAITING_ON_A_LOCK, 2), "the prefetches did not both reach the uncommitted rows"
    other.commit()
    results = [join() for join in claims]
    assert [error for _, error in results] == [None, None]
    served = {claim.comparison_id for claim, _ in results}
    assert len(served) == 1 and current.pk not in served
    live = Assignment.objects.filter(annotator=annotator, state=AssignmentState.LEASED)
    assert sorted(live.values_list("slot", flat=True)) == [0, 1]
    assert sum(Comparison.objects.values_list("leased", flat=True)) == 2


def test_a_late_submission_and_a_claim_by_the_same_annotator_do_not_deadlock(project, other):
    """The submission locks the assignment, then the comparison; a claim that
    locked the comparison and then waited for the assignment would deadlock with
    it (Postgres then kills one after a second)."""
    comparison = make_comparison(project)
    annotator = UserFactory()
    lease_run_out(project, annotator, comparison)
    with other.cursor() as cursor:  # hold the assignment so both requests queue behind it
        cursor.execute(
            "SELECT 1 FROM annotation_assignment WHERE comparison_id = %s AND annotator_id = %s FOR UPDATE",
            [comparison.pk, annotator.pk],
        )
    submission = in_thread(submit, comparison, annotator)
    assert wait_for(WAITING_ON_A_LOCK, 1)
    claim = in_thread(queue.comparison_claim, project_id=project.pk, annotator_id=annotator.pk)
    wait_for(WAITING_ON_A_LOCK, 2, seconds=1)  # a claim that skips the locked row does not wait at all
    other.commit()

    (judgment, created), submit_error = submission()
    claimed, claim_error = claim()
    assert (submit_error, claim_error) == (None, None)
    assert created and judgment.lease_lost
    assert claimed is None, "the comparison was served again to the annotator who just answered it"
    assert Assignment.objects.get(annotator=annotator).state == AssignmentState.SUBMITTED
    comparison.refresh_from_db()
    assert (comparison.judged, comparison.leased, comparison.status) == (1, 0, "done")


@pytest.mark.slow
def test_a_claim_never_turns_a_submitted_assignment_back_into_a_lease(project):
    """A claim's snapshot saw the annotator's lease expired; the annotator's late
    submission commits while the claim is still walking the queue. The claim must
    not lease that comparison again (its upsert would flip "submitted" to "leased")."""
    project.overlap = 2
    project.save()
    target = make_comparison(project, priority=-1)  # served last
    annotator = UserFactory()
    lease_run_out(project, annotator, target)
    # Many full comparisons ahead of it make the claim's walk long enough to commit
    # the submission in the middle of it.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO annotation_comparison (project_id, prompt_id, external_id, candidate_ids, status, priority,"
            " wanted, judged, leased, is_gold, origin, serve_order, created_at)"
            " SELECT %s, %s, 'full-' || g, %s::jsonb, 'open', 0, 1, 0, 1, false, '{}'::jsonb, g, now()"
            " FROM generate_series(1, 300000) g",
            [project.pk, target.prompt_id, str(target.candidate_ids)],
        )
        cursor.execute("ANALYZE annotation_comparison")
    claim = in_thread(queue.comparison_claim, project_id=project.pk, annotator_id=annotator.pk)
    assert wait_for(CLAIMING, 1)
    _, created = submit(target, annotator)
    assert created
    assert sessions(CLAIMING) == 1, "the claim finished before the submission: no race was tested"
    claimed, error = claim()
    assert error is None
    assert claimed is None or claimed.comparison_id != target.pk
    assert Assignment.objects.get(annotator=annotator, comparison=target).state == AssignmentState.SUBMITTED
    target.refresh_from_db()
    assert (target.judged, target.leased) == (1, 0)
    assert Judgment.objects.filter(comparison=target).count() == 1
