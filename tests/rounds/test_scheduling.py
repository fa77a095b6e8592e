"""The scheduler starts a round at the project's threshold of new judgments (in policy projects: judgments of the
last round's pushed comparisons), or once its period has passed, and not otherwise."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Comparison
from training import dispatch, scheduling
from training.models import Round, RoundStatus, RoundTrigger
from training.tasks import round_run_task, rounds_schedule_task

from .conftest import add_judgments, fast_settings, previous_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(project, tiny_backbone):
    project.training_settings = fast_settings(tiny_backbone, schedule=True, min_new_judgments=5)
    project.save(update_fields=["training_settings"])
    return project


def test_no_round_below_the_threshold_and_one_at_it(scheduled, django_capture_on_commit_callbacks, sent_rounds):
    add_judgments(scheduled, 4)
    assert scheduling.rounds_schedule() == []

    add_judgments(scheduled, 1, start=100)
    with django_capture_on_commit_callbacks(execute=True):
        [started] = scheduling.rounds_schedule()

    assert (started.trigger, started.status, started.triggered_by) == (RoundTrigger.SCHEDULE, RoundStatus.QUEUED, None)
    assert sent_rounds == [started.pk]  # queued for the gpu worker once the transaction committed


def test_no_second_round_while_one_is_live_and_counting_restarts_after_the_last_round(scheduled):
    add_judgments(scheduled, 5)
    [first] = scheduling.rounds_schedule()
    add_judgments(scheduled, 5, start=100)
    assert scheduling.rounds_schedule() == []  # the first is still queued

    Round.objects.filter(pk=first.pk).update(status=RoundStatus.FAILED, finished_at=timezone.now())
    # The 5 judgments after the failed round's cut-off count as new; those it saw do not.
    assert scheduling.judgments_since(project_id=scheduled.pk) == first.judgment_max_id
    [second] = scheduling.rounds_schedule()
    assert second.judgment_max_id > first.judgment_max_id


def test_gold_judgments_and_unscheduled_projects_do_not_count(scheduled, project_factory=None):
    add_judgments(scheduled, 4)
    add_judgments(scheduled, 3, start=100, gold=True)
    assert scheduling.rounds_schedule() == []

    scheduled.training_settings = {**scheduled.training_settings, "schedule": False}
    scheduled.save(update_fields=["training_settings"])
    add_judgments(scheduled, 10, start=200)
    assert scheduling.rounds_schedule() == []


def test_before_any_round_counting_starts_after_the_active_version(scheduled):
    judgments = add_judgments(scheduled, 8)
    previous_version(scheduled, judgment_max_id=judgments[3].pk)  # saw the first 4
    assert scheduling.rounds_schedule() == []
    add_judgments(scheduled, 1, start=100)
    assert len(scheduling.rounds_schedule()) == 1


def test_a_project_with_invalid_settings_is_skipped_not_fatal(scheduled, project):
    scheduled.training_settings = {**scheduled.training_settings, "epochs": "many"}
    scheduled.save(update_fields=["training_settings"])
    add_judgments(scheduled, 10)
    assert scheduling.rounds_schedule() == []


def test_the_tasks_go_to_their_queues():
    from config.celery import app

    def queue_of(task):
        return app.amqp.router.route(task._get_exec_options(), task.name)["queue"].name

    assert queue_of(round_run_task) == "gpu"
    assert dispatch.ROUND_RUN == round_run_task.name  # the services send it by this name
    assert queue_of(rounds_schedule_task) == "default"
    assert round_run_task.acks_late and round_run_task.reject_on_worker_lost and round_run_task.ignore_result
    assert round_run_task.time_limit > round_run_task.soft_time_limit > 0


def test_a_period_starts_a_round_below_the_threshold_once_the_last_one_is_that_old(scheduled):
    scheduled.training_settings = {**scheduled.training_settings, "schedule_every_hours": 2}
    scheduled.save(update_fields=["training_settings"])
    add_judgments(scheduled, 1)
    [first] = scheduling.rounds_schedule()  # no round yet: the period has run out
    Round.objects.filter(pk=first.pk).update(status=RoundStatus.SUCCEEDED, finished_at=timezone.now())
    add_judgments(scheduled, 1, start=100)
    assert scheduling.rounds_schedule() == []  # 1 new judgment, and the last round is minutes old

    Round.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=3))
    [second] = scheduling.rounds_schedule()
    assert second.trigger == RoundTrigger.SCHEDULE


def test_a_policy_project_counts_the_judgments_of_its_last_rounds_pushed_comparisons(scheduled, tiny_policy):
    scheduled.training_settings = {**scheduled.training_settings, "policy": tiny_policy}
    scheduled.save(update_fields=["training_settings"])
    judged = add_judgments(scheduled, 5)
    last = Round.objects.create(
        project=scheduled, kind="policy", status=RoundStatus.SUCCEEDED, judgment_max_id=judged[0].pk - 1
    )
    # Five judgments since its cut-off, none of them on comparisons it pushed: no round.
    assert scheduling.rounds_schedule() == []
    Comparison.objects.filter(pk__in=[j.comparison_id for j in judged]).update(
        origin={"round": last.pk, "purpose": "active"}
    )
    [started] = scheduling.rounds_schedule()
    assert started.kind == "policy"
