"""The queue: who is served what, in which order, and what happens to leases."""

import io
import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import queue
from annotation.judgments import JudgmentInput, NotNeeded, judgment_submit
from annotation.models import Assignment, AssignmentState, Comparison

from ..factories import UserFactory, make_comparison

pytestmark = pytest.mark.django_db


def submit(comparison, user, key=None):
    comparison = Comparison.objects.select_related("project").get(pk=comparison.pk)
    return judgment_submit(
        comparison_id=comparison.pk,
        annotator_id=user.pk,
        answer=JudgmentInput(winner=comparison.candidate_ids[0]),
        idempotency_key=key or f"{user.pk}-{comparison.pk}",
    )


def claim(project, user, **kwargs):
    return queue.comparison_claim(project_id=project.pk, annotator_id=user.pk, **kwargs)


def test_it_serves_the_highest_priority_first(project, annotator):
    low = make_comparison(project, priority=1)
    high = make_comparison(project, priority=5)
    assert claim(project, annotator).comparison_id == high.pk
    submit(high, annotator)
    assert claim(project, annotator).comparison_id == low.pk


def test_equal_priorities_are_served_oldest_first(project, annotator):
    first = make_comparison(project)
    make_comparison(project)
    assert claim(project, annotator).comparison_id == first.pk


def test_asking_again_returns_the_lease_already_held(project, annotator):
    make_comparison(project)
    make_comparison(project)
    first = claim(project, annotator)
    again = claim(project, annotator)
    assert again.comparison_id == first.comparison_id
    assert again.resumed and not first.resumed
    assert Comparison.objects.get(pk=first.comparison_id).leased == 1


def test_it_never_serves_a_judged_comparison_to_the_same_annotator(project, annotator):
    project.overlap = 3
    project.save()
    only = make_comparison(project)
    claim(project, annotator)
    submit(only, annotator)
    assert claim(project, annotator) is None


def test_a_live_lease_counts_against_the_judgments_wanted(project, annotator):
    make_comparison(project, wanted=1)
    other = UserFactory()
    assert claim(project, annotator) is not None
    assert claim(project, other) is None


def test_overlap_two_serves_each_comparison_to_two_annotators(project):
    project.overlap = 2
    project.save()
    comparison = make_comparison(project)
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    assert claim(project, a).comparison_id == comparison.pk
    assert claim(project, b).comparison_id == comparison.pk
    assert claim(project, c) is None
    submit(comparison, a)
    submit(comparison, b)
    comparison.refresh_from_db()
    assert (comparison.judged, comparison.leased, comparison.status) == (2, 0, "done")


def test_an_expired_lease_returns_the_comparison_to_the_pool(project, annotator):
    comparison = make_comparison(project, wanted=1)
    other = UserFactory()
    claim(project, annotator)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    assert claim(project, other, now=later).comparison_id == comparison.pk
    assert Assignment.objects.get(comparison=comparison, annotator=annotator).state == AssignmentState.EXPIRED
    assert Comparison.objects.get(pk=comparison.pk).leased == 1


def test_coming_back_after_a_lease_ran_out_unreaped_serves_a_task_and_one_lease(project, annotator):
    """The reaper has not run yet, so the run-out lease still reads "leased": the
    claim expires it first (an annotator holds one live lease per project)."""
    first = make_comparison(project, priority=1)
    second = make_comparison(project)
    assert claim(project, annotator).comparison_id == first.pk
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    again = claim(project, annotator, now=later)
    assert again is not None and not again.resumed
    assert again.comparison_id in (first.pk, second.pk)
    live = Assignment.objects.filter(annotator=annotator, state=AssignmentState.LEASED)
    assert list(live.values_list("comparison_id", flat=True)) == [again.comparison_id]
    assert sum(Comparison.objects.values_list("leased", flat=True)) == 1


def test_a_late_submission_is_kept_when_the_comparison_still_needs_it(project, annotator):
    comparison = make_comparison(project, wanted=1)
    claim(project, annotator)
    assert queue.leases_expire(now=timezone.now() + timedelta(seconds=project.lease_seconds + 1)) == 1
    judgment, created = submit(comparison, annotator)
    assert created and judgment.lease_lost
    comparison.refresh_from_db()
    assert (comparison.judged, comparison.leased, comparison.status) == (1, 0, "done")


def test_a_late_submission_is_refused_when_others_completed_it_and_nothing_is_written(project, annotator):
    comparison = make_comparison(project, wanted=1)
    other = UserFactory()
    claim(project, annotator)
    claim(project, other, now=timezone.now() + timedelta(seconds=project.lease_seconds + 1))
    submit(comparison, other)
    with pytest.raises(NotNeeded):
        submit(comparison, annotator)
    comparison.refresh_from_db()
    assert (comparison.judged, comparison.leased) == (1, 0)
    assert comparison.judgments.count() == 1


def test_a_skipped_comparison_is_never_served_again_and_frees_its_lease(project, annotator):
    comparison = make_comparison(project, wanted=1)
    other = UserFactory()
    claim(project, annotator)
    queue.comparison_skip(comparison=comparison, annotator_id=annotator.pk)
    queue.comparison_skip(comparison=comparison, annotator_id=annotator.pk)  # a retry is harmless
    assert claim(project, annotator) is None
    assert claim(project, other).comparison_id == comparison.pk


def test_a_released_comparison_can_be_served_again(project, annotator):
    comparison = make_comparison(project, wanted=1)
    claim(project, annotator)
    queue.lease_release(comparison=comparison, annotator_id=annotator.pk)
    assert Comparison.objects.get(pk=comparison.pk).leased == 0
    assert claim(project, annotator).comparison_id == comparison.pk


def test_releasing_without_a_lease_is_a_clear_conflict(project, annotator):
    comparison = make_comparison(project)
    with pytest.raises(queue.NoLiveLease):
        queue.lease_release(comparison=comparison, annotator_id=annotator.pk)


def test_gold_checks_are_served_at_the_projects_share(project, annotator):
    gold = make_comparison(project, is_gold=True, wanted=1_000_000, gold_answer={"winner": 0})
    make_comparison(project)
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    assert claim(project, annotator).comparison_id == gold.pk


def test_gold_checks_are_not_served_at_share_zero_and_never_twice(project, annotator):
    gold = make_comparison(project, is_gold=True, wanted=1_000_000, gold_answer={"winner": 0})
    first, second = make_comparison(project), make_comparison(project)
    project.gold_share = 0.0
    project.save(update_fields=["gold_share"])
    assert claim(project, annotator).comparison_id == first.pk
    submit(first, annotator)
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    assert claim(project, annotator).comparison_id == gold.pk
    submit(gold, annotator)
    assert claim(project, annotator).comparison_id == second.pk


def test_gold_checks_alone_are_not_served_once_the_real_work_is_done(project, annotator):
    make_comparison(project, is_gold=True, wanted=1_000_000, gold_answer={"winner": 0})
    regular = make_comparison(project)
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    claimed = claim(project, annotator)
    submit(Comparison.objects.get(pk=claimed.comparison_id), annotator)
    if claimed.comparison_id != regular.pk:  # the gold check came first; the real task is next
        submit(Comparison.objects.get(pk=claim(project, annotator).comparison_id), annotator)
    assert claim(project, annotator) is None


def test_leases_in_one_project_do_not_block_another(project, annotator):
    from ..factories import ProjectFactory

    other_project = ProjectFactory()
    make_comparison(project)
    theirs = make_comparison(other_project)
    claim(project, annotator)
    assert claim(other_project, annotator).comparison_id == theirs.pk


# --- The lease-ahead: the next task fetched while the annotator works on this one ---------


def live_leases(user):
    return set(
        Assignment.objects.filter(annotator=user, state=AssignmentState.LEASED).values_list("comparison_id", flat=True)
    )


def test_asking_ahead_leases_a_second_task_never_the_current_one(project, annotator):
    for _ in range(3):
        make_comparison(project)
    current = claim(project, annotator)
    ahead = claim(project, annotator, ahead=True)
    assert ahead is not None and not ahead.resumed
    assert ahead.comparison_id != current.comparison_id
    assert live_leases(annotator) == {current.comparison_id, ahead.comparison_id}
    # A reload keeps both: plain `next` is still the current task, `ahead` the same prefetched one.
    assert claim(project, annotator).comparison_id == current.comparison_id
    again = claim(project, annotator, ahead=True)
    assert again.comparison_id == ahead.comparison_id and again.resumed
    assert sum(Comparison.objects.values_list("leased", flat=True)) == 2


def test_after_submitting_the_current_task_next_is_the_prefetched_one(project, annotator):
    first, second, third = (make_comparison(project) for _ in range(3))
    assert claim(project, annotator).comparison_id == first.pk
    assert claim(project, annotator, ahead=True).comparison_id == second.pk
    submit(first, annotator)
    promoted = claim(project, annotator)
    assert promoted.comparison_id == second.pk and promoted.resumed
    # The slot the submission freed takes the next prefetch.
    assert claim(project, annotator, ahead=True).comparison_id == third.pk
    assert live_leases(annotator) == {second.pk, third.pk}


def test_a_prefetched_lease_expires_like_any_lease(project, annotator):
    make_comparison(project, wanted=1)
    prefetched = make_comparison(project, wanted=1)
    other = UserFactory()
    claim(project, annotator)
    assert claim(project, annotator, ahead=True).comparison_id == prefetched.pk
    assert claim(project, other) is None  # both are leased
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    assert claim(project, other, now=later) is not None
    assert Assignment.objects.get(comparison=prefetched, annotator=annotator).state == AssignmentState.EXPIRED
    assert Comparison.objects.get(pk=prefetched.pk).leased == 0  # the other annotator got the first one
    assert sum(Comparison.objects.values_list("leased", flat=True)) == 1


def test_prefetching_never_overserves_the_judgments_wanted(project, annotator):
    project.overlap = 2
    project.save()
    a, b = make_comparison(project), make_comparison(project)
    other, third = UserFactory(), UserFactory()
    claim(project, annotator)
    claim(project, annotator, ahead=True)
    claim(project, other)
    claim(project, other, ahead=True)
    # Two leases on each comparison, which wants two judgments: nothing for a third annotator.
    assert [Comparison.objects.get(pk=c.pk).leased for c in (a, b)] == [2, 2]
    assert claim(project, third) is None and claim(project, third, ahead=True) is None


def test_the_database_refuses_a_third_live_lease(project, annotator):
    from django.db import IntegrityError, transaction

    comparisons = [make_comparison(project) for _ in range(3)]
    claim(project, annotator)
    claim(project, annotator, ahead=True)
    now = timezone.now()
    for slot in (0, 1, 2):
        with pytest.raises(IntegrityError), transaction.atomic():
            Assignment.objects.create(
                project=project,
                comparison=comparisons[2],
                annotator=annotator,
                state=AssignmentState.LEASED,
                leased_at=now,
                expires_at=now + timedelta(minutes=5),
                slot=slot,
            )


def served_in_order(project, user, count):
    """The comparisons the queue serves the annotator, judged one after another."""
    served = []
    for _ in range(count):
        claimed = claim(project, user)
        comparison = Comparison.objects.select_related("prompt").get(pk=claimed.comparison_id)
        submit(comparison, user)
        served.append(comparison)
    return served


def test_the_demo_serves_eval_prompts_among_the_first_tasks_and_spreads_each_prompts_pairs():
    # The demo's 10 eval prompts are the last in its file: in file order, 95 judgments held out none of them.
    from django.core.management import call_command

    from annotation.models import Project, Split

    call_command("demo_load", stdout=io.StringIO())
    project = Project.objects.get()
    annotator = project.memberships.get(user__username="annotator").user
    served = served_in_order(project, annotator, 30)
    eval_prompts = {c.prompt_id for c in served if c.prompt.split == Split.EVAL}
    assert len(eval_prompts) >= 2
    back_to_back = sum(a.prompt_id == b.prompt_id for a, b in itertools.pairwise(served))
    assert back_to_back <= 3, [c.prompt.external_id for c in served]


def test_a_project_may_ask_for_each_prompts_pairs_one_after_another(project, annotator):
    from annotation.comparisons import comparisons_build
    from annotation.models import Candidate, Prompt

    project.serve_prompt_pairs_together = True
    project.save()
    for p in range(4):
        prompt = Prompt.objects.create(project=project, external_id=f"p{p}", text=f"question {p}")
        for c in range(3):
            Candidate.objects.create(project=project, prompt=prompt, external_id=f"p{p}-c{c}", text=f"answer {c}")
    comparisons_build(project=project, mode="pairs")
    served = served_in_order(project, annotator, 12)
    prompts = [c.prompt_id for c in served]
    # Each prompt's three pairs are served as one run: four runs in all.
    assert sum(a != b for a, b in itertools.pairwise(prompts)) == 3
