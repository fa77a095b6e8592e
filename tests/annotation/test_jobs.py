"""The background-job lifecycle (annotation/jobs.py) on imports, exports and rounds: claim and take-over, fencing
(a stale owner's late write is refused), the sweep, and cancel and retry through the API with role checks."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError
from django.utils import timezone

from annotation import jobs
from annotation.exporters import export_job_create, export_request_parse
from annotation.importers import import_job_create, import_job_run
from annotation.importers import jobs as import_jobs_module
from annotation.models import ExportJob, ImportJob, JobStatus, Prompt
from annotation.tasks import import_run_task
from training.models import Round

LONG_AGO = timedelta(hours=1)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def sent(monkeypatch):
    """The (task name, id) of every job task sent to the broker (nothing reaches one)."""
    from training import dispatch

    messages = []
    monkeypatch.setattr(jobs, "task_send", lambda name, job_id: messages.append((name.split(".")[-1], job_id)))
    monkeypatch.setattr(dispatch, "send", lambda name, job_id: messages.append((name.split(".")[-1], job_id)))
    return messages


def import_job(project, rows: int = 3) -> ImportJob:
    lines = "".join(
        json.dumps({"id": f"q{i}", "text": f"Question {i}?", "comparisons": "pairs",
                    "candidates": [{"id": f"q{i}-a", "text": "A."}, {"id": f"q{i}-b", "text": "B."}]}) + "\n"
        for i in range(rows)
    )  # fmt: skip
    return import_job_create(
        project=project, kind="bundle", uploaded_file=SimpleUploadedFile("u.jsonl", lines.encode()),
        original_name="u.jsonl",
    )  # fmt: skip


def go_silent(model, job_id: int) -> None:
    """The job's worker stopped: its last heartbeat is an hour old."""
    model.objects.filter(pk=job_id).update(heartbeat_at=timezone.now() - LONG_AGO)


# --- claim, take-over, fencing -------------------------------------------------------------------------------------


def test_a_redelivered_task_leaves_a_live_import_alone_and_takes_over_a_silent_one(media, project):
    job = import_job(project)
    assert jobs.job_claim(jobs.import_jobs(), job.pk) == 1  # the first delivery; its worker is busy

    import_run_task(job.pk)  # a second delivery, while the first worker still beats
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert Prompt.objects.filter(project=project).count() == 0

    go_silent(ImportJob, job.pk)  # the first worker died
    import_run_task(job.pk)

    done = ImportJob.objects.get(pk=job.pk)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    assert Prompt.objects.filter(project=project).count() == 3


def test_a_stale_owner_s_late_commit_is_refused_and_its_rows_rolled_back(media, project, monkeypatch):
    job = import_job(project)
    report = import_jobs_module.job_report

    def taken_over_meanwhile(kind, job_id, attempt, **fields):
        report(kind, job_id, attempt, **fields)
        if fields.get("phase") == "writing":
            # This worker stalls long enough to be taken for dead, and a redelivered task claims the job.
            go_silent(ImportJob, job_id)
            assert jobs.job_claim(kind, job_id) == attempt + 1

    monkeypatch.setattr(import_jobs_module, "job_report", taken_over_meanwhile)
    import_job_run(job_id=job.pk)

    after = ImportJob.objects.get(pk=job.pk)
    assert (after.status, after.attempts, after.result) == (JobStatus.RUNNING, 2, {})  # the successor's
    assert Prompt.objects.filter(project=project).count() == 0


def test_every_write_of_a_replaced_attempt_is_refused(media, project):
    kind = jobs.import_jobs()
    job = import_job(project)
    first = jobs.job_claim(kind, job.pk)
    go_silent(ImportJob, job.pk)
    second = jobs.job_claim(kind, job.pk)

    with pytest.raises(jobs.JobLost):
        jobs.job_report(kind, job.pk, first, phase="validating")
    with pytest.raises(jobs.JobLost):
        jobs.job_complete(kind, job.pk, first, message="done")
    assert not jobs.job_finish(kind, job.pk, first, JobStatus.FAILED, error="late")
    current = ImportJob.objects.get(pk=job.pk)
    assert (current.status, current.attempts, current.message) == (JobStatus.RUNNING, second, "")


def test_a_job_whose_workers_keep_dying_fails_with_a_reason_instead_of_looping(media, project, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    job = import_job(project)
    jobs.job_claim(jobs.import_jobs(), job.pk)
    go_silent(ImportJob, job.pk)

    done = import_job_run(job_id=job.pk)

    assert done.status == JobStatus.FAILED
    assert done.message.startswith("Gave up after 1 attempts: the worker running this import stopped")
    assert "Nothing was imported" in done.message and Prompt.objects.filter(project=project).count() == 0


def test_a_database_error_is_stored_as_our_message_not_the_database_s(media, project, monkeypatch):
    from annotation.importers import writing

    def refused(*args, **kwargs):
        raise IntegrityError('duplicate key value violates unique constraint "annotation_prompt_project_id_key"')

    monkeypatch.setattr(writing, "_plan_write", refused)
    done = import_job_run(job_id=import_job(project).pk)

    assert done.status == JobStatus.FAILED and "Run it again" in done.message
    assert "annotation_prompt" not in done.message and "duplicate key" not in done.message


# --- the sweep -----------------------------------------------------------------------------------------------------


def test_the_sweep_requeues_silent_jobs_of_every_kind_and_sends_their_tasks_again(
    media, project, sent, django_capture_on_commit_callbacks
):
    imported = import_job(project)
    exported = export_job_create(project=project, request=export_request_parse(shape="pairs", file_format="jsonl"))
    trained = Round.objects.create(project=project, status=JobStatus.RUNNING, attempts=1, heartbeat_at=timezone.now())
    for kind, job in ((jobs.import_jobs(), imported), (jobs.export_jobs(), exported)):
        jobs.job_claim(kind, job.pk)
    assert jobs.jobs_reap_stale() == []  # every heartbeat fresh (the round's: never beat, but running)

    for model, job in ((ImportJob, imported), (ExportJob, exported), (Round, trained)):
        go_silent(model, job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        changed = jobs.jobs_reap_stale()

    assert sorted(changed) == sorted([("import", imported.pk), ("export", exported.pk), ("round", trained.pk)])
    assert sorted(sent) == sorted(
        [("import_run_task", imported.pk), ("export_run_task", exported.pk), ("round_run_task", trained.pk)]
    )
    assert ImportJob.objects.get(pk=imported.pk).status == JobStatus.QUEUED
    assert ExportJob.objects.get(pk=exported.pk).status == JobStatus.QUEUED
    assert Round.objects.get(pk=trained.pk).step == "queued (resuming)"
    assert jobs.jobs_reap_stale() == []  # requeued just now: not again until the stale limit passes once more


def test_the_sweep_fails_a_job_out_of_attempts_and_ends_a_cancelled_one(media, project, sent):
    kind = jobs.import_jobs()
    out_of_attempts, cancelled = import_job(project), import_job(project)
    for job in (out_of_attempts, cancelled):
        jobs.job_claim(kind, job.pk)
        go_silent(ImportJob, job.pk)
        jobs.jobs_reap_stale()
        jobs.job_claim(kind, job.pk)  # the second attempt (the default limit)
    jobs.job_cancel(kind, cancelled.pk)
    go_silent(ImportJob, out_of_attempts.pk)
    go_silent(ImportJob, cancelled.pk)

    jobs.jobs_reap_stale()

    failed = ImportJob.objects.get(pk=out_of_attempts.pk)
    assert failed.status == JobStatus.FAILED and failed.finished_at
    assert failed.message.startswith("The worker running this import stopped reporting (no heartbeat for 90 s)")
    assert ImportJob.objects.get(pk=cancelled.pk).status == JobStatus.CANCELLED


def test_the_sweep_sends_again_a_job_left_queued_by_a_web_process_that_died(
    media, project, sent, django_capture_on_commit_callbacks
):
    job = import_job(project)  # created for an inline import; the process died before it claimed the job
    assert jobs.jobs_reap_stale() == []
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - LONG_AGO)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.jobs_reap_stale() == [("import", job.pk)]
    assert sent == [("import_run_task", job.pk)]
    assert import_job_run(job_id=job.pk).status == JobStatus.SUCCEEDED


# --- cancel and retry through the API ------------------------------------------------------------------------------


def test_a_researcher_cancels_a_queued_import_and_its_task_then_does_nothing(media, api, researcher, project):
    job = import_job(project)

    response = api.as_user(researcher).post(f"/api/v1/imports/{job.pk}/cancel/")

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("cancelled", True)
    import_run_task(job.pk)
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert Prompt.objects.filter(project=project).count() == 0
    again = api.post(f"/api/v1/imports/{job.pk}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["message"]


def test_cancelling_a_running_import_stops_it_before_it_commits(media, api, researcher, project, monkeypatch):
    job = import_job(project)
    report = import_jobs_module.job_report

    def cancelled_meanwhile(kind, job_id, attempt, **fields):
        report(kind, job_id, attempt, **fields)
        if fields.get("phase") == "writing":
            response = api.as_user(researcher).post(f"/api/v1/imports/{job_id}/cancel/")
            assert response.json()["status"] == "running" and response.json()["cancel_requested"]

    monkeypatch.setattr(import_jobs_module, "job_report", cancelled_meanwhile)
    done = import_job_run(job_id=job.pk)

    assert (done.status, done.message) == (JobStatus.CANCELLED, "Cancelled; nothing was imported.")
    assert Prompt.objects.filter(project=project).count() == 0


def test_a_researcher_retries_a_failed_import_and_it_runs_again_from_its_file(
    media, api, researcher, project, settings, sent, django_capture_on_commit_callbacks
):
    settings.JOB_MAX_ATTEMPTS = 1
    job = import_job(project)
    jobs.job_claim(jobs.import_jobs(), job.pk)
    go_silent(ImportJob, job.pk)
    jobs.jobs_reap_stale()
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(researcher).post(f"/api/v1/imports/{job.pk}/retry/")

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["message"]) == ("queued", "")
    assert sent == [("import_run_task", job.pk)]
    done = import_job_run(job_id=job.pk)  # the limit counts again from the retry; attempts go on growing
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    assert Prompt.objects.filter(project=project).count() == 3
    again = api.post(f"/api/v1/imports/{job.pk}/retry/")
    assert again.status_code == 409 and "this one is succeeded" in again.json()["message"]


def test_a_researcher_cancels_and_retries_an_export(
    media, api, researcher, project, sent, django_capture_on_commit_callbacks
):
    job = export_job_create(project=project, request=export_request_parse(shape="pairs", file_format="jsonl"))

    cancelled = api.as_user(researcher).post(f"/api/v1/exports/{job.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with django_capture_on_commit_callbacks(execute=True):
        retried = api.post(f"/api/v1/exports/{job.pk}/retry/")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    assert sent == [("export_run_task", job.pk)]


@pytest.mark.parametrize("action", ["cancel", "retry"])
@pytest.mark.parametrize("what", ["imports", "exports"])
def test_only_researchers_of_the_project_may_cancel_or_retry_a_job(
    media, api, project, annotator, outsider, action, what
):
    if what == "imports":
        job = import_job(project)
    else:
        job = export_job_create(project=project, request=export_request_parse(shape="pairs", file_format="jsonl"))
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    ExportJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    before = type(job).objects.values("status", "cancel_requested").get(pk=job.pk)

    assert api.as_user(annotator).post(f"/api/v1/{what}/{job.pk}/{action}/").status_code == 403
    assert api.as_user(outsider).post(f"/api/v1/{what}/{job.pk}/{action}/").status_code == 404
    assert api.as_user(outsider).post(f"/api/v1/{what}/{10**9}/{action}/").status_code == 404
    api.force_authenticate(user=None)
    assert api.post(f"/api/v1/{what}/{job.pk}/{action}/").status_code in (401, 403)
    assert type(job).objects.values("status", "cancel_requested").get(pk=job.pk) == before


# --- label imports are import jobs ---------------------------------------------------------------------------------


def test_a_label_import_is_an_import_job_listed_with_the_others_and_recovered_like_them(
    media, api, researcher, project
):
    pairs = (
        b'{"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}\n{"prompt": "3 + 3?", "chosen": "6", "rejected": "7"}\n'
    )
    upload = SimpleUploadedFile("pairs.jsonl", pairs)
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{project.pk}/label-imports/", {"file": upload, "kind": "pairs"}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["comparisons"], response.json()["judgments"]) == (2, 2)
    [listed] = api.get(f"/api/v1/projects/{project.pk}/imports/").json()
    assert (listed["kind"], listed["status"], listed["attempts"]) == ("pairs", "succeeded", 1)

    # A second file whose worker (here: the web process running it inline) died after claiming it.
    again = import_job_create_labelled(project, researcher, b'{"prompt": "1 + 1?", "chosen": "2", "rejected": "3"}\n')
    jobs.job_claim(jobs.import_jobs(), again.pk)
    go_silent(ImportJob, again.pk)
    import_run_task(again.pk)

    done = ImportJob.objects.get(pk=again.pk)
    assert (done.status, done.attempts, done.result["judgments"]) == (JobStatus.SUCCEEDED, 2, 1)
    assert Prompt.objects.filter(project=project).count() == 3


def import_job_create_labelled(project, user, content: bytes) -> ImportJob:
    from annotation.importers import labelled_import_job_create

    return labelled_import_job_create(
        project=project, kind="pairs", uploaded_file=SimpleUploadedFile("more.jsonl", content),
        original_name="more.jsonl", file_format="jsonl", created_by=user,
    )  # fmt: skip
