"""Many annotators at once: nothing served twice, nothing over-judged, nothing lost.

Runs on whichever database the suite runs on: Postgres in CI, the SQLite
embedded default locally. Each thread has its own database connection.
"""

import threading
from collections import Counter

import pytest
from django.db import connection

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Assignment, AssignmentState, Comparison, Judgment

from ..factories import UserFactory, make_comparison

THREADS = 16
COMPARISONS = 40


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [1, 2])
def test_concurrent_annotators_never_overserve_or_duplicate(project, overlap):
    project.overlap = overlap
    project.lease_seconds = 600
    project.save()
    comparisons = [make_comparison(project) for _ in range(COMPARISONS)]
    users = [UserFactory() for _ in range(THREADS)]
    served: list[tuple[int, int]] = []
    created: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def annotate(user):
        try:
            start.wait()
            while True:
                claim = queue.comparison_claim(project_id=project.pk, annotator_id=user.pk)
                if claim is None:
                    return
                comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
                with lock:
                    served.append((user.pk, comparison.pk))
                judgment, was_created = judgment_submit(
                    comparison_id=comparison.pk,
                    annotator_id=user.pk,
                    answer=JudgmentInput(winner=comparison.candidate_ids[user.pk % 2]),
                    idempotency_key=f"{user.pk}:{comparison.pk}",
                )
                if was_created:
                    with lock:
                        created.append(judgment.pk)
        except BaseException as exc:  # reported below with the thread's error
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=annotate, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an annotator thread hung"
    assert not failures, failures

    assert len(served) == len(set(served)), "a comparison was served twice to one annotator"
    per_comparison = Counter(Judgment.objects.values_list("comparison_id", flat=True))
    assert max(per_comparison.values()) <= overlap
    assert sorted(created) == sorted(Judgment.objects.values_list("id", flat=True)), "a submission was lost"
    # Everything got done, and the counters agree with the rows.
    assert len(created) == COMPARISONS * overlap
    for c in Comparison.objects.filter(pk__in=[c.pk for c in comparisons]):
        assert (c.judged, c.leased, c.status) == (per_comparison[c.pk], 0, "done")


@pytest.mark.django_db(transaction=True)
def test_one_annotator_asking_twice_at_once_holds_one_lease(project):
    """Two tabs (or a prefetch) asking for the next task at the same moment get the
    same lease: an annotator holds at most one live lease per project. (Before the
    unique index, 125 of 150 such rounds on Postgres left two leases.)"""
    comparisons = [make_comparison(project) for _ in range(4)]
    for _ in range(25):
        user = UserFactory()
        start = threading.Barrier(2)
        claims, failures = [], []

        def ask(user=user, start=start, claims=claims, failures=failures):
            try:
                start.wait()
                claims.append(queue.comparison_claim(project_id=project.pk, annotator_id=user.pk))
            except BaseException as exc:  # reported below
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not failures, failures
        assert len({claim.comparison_id for claim in claims}) == 1, "two leases for one annotator"
        queue.lease_release(comparison=Comparison.objects.get(pk=claims[0].comparison_id), annotator_id=user.pk)
    assert [c.leased for c in Comparison.objects.filter(pk__in=[c.pk for c in comparisons])] == [0, 0, 0, 0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_prefetches_never_make_a_third_lease(project):
    """Two tabs prefetching at once while a third asks for the current task: one
    annotator ends with at most two live leases (one per slot), the prefetched
    one never the current one, and the counters agree."""
    comparisons = [make_comparison(project) for _ in range(6)]
    for _ in range(20):
        user = UserFactory()
        queue.comparison_claim(project_id=project.pk, annotator_id=user.pk)
        start = threading.Barrier(3)
        claims, failures = [], []

        def ask(ahead, user=user, start=start, claims=claims, failures=failures):
            try:
                start.wait()
                claims.append((ahead, queue.comparison_claim(project_id=project.pk, annotator_id=user.pk, ahead=ahead)))
            except BaseException as exc:  # reported below
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=ask, args=(ahead,)) for ahead in (True, True, False)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not failures, failures
        live = list(
            Assignment.objects.filter(annotator=user, state=AssignmentState.LEASED).values_list(
                "comparison_id", flat=True
            )
        )
        assert len(live) == 2, "an annotator holds one current and one prefetched lease, no more"
        prefetched = {claim.comparison_id for ahead, claim in claims if ahead}
        current = {claim.comparison_id for ahead, claim in claims if not ahead}
        assert len(prefetched) == 1 and len(current) == 1 and prefetched != current
        assert prefetched | current == set(live)
        for comparison_id in live:
            queue.lease_release(comparison=Comparison.objects.get(pk=comparison_id), annotator_id=user.pk)
    assert [c.leased for c in Comparison.objects.filter(pk__in=[c.pk for c in comparisons])] == [0] * 6
