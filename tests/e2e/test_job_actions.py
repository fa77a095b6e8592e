"""A researcher cancels and retries background jobs from the dashboard's imports and exports lists: the buttons
follow each job's state, and a retried import runs on a real Celery worker to the end."""

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.importers import import_job_create
from annotation.models import ExportJob, ImportJob, JobStatus, Prompt
from config.celery import app

from .conftest import shot, sign_in


@pytest.fixture
def worker(people):
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"], loglevel="WARNING") as w:
        yield w


def test_a_researcher_retries_a_failed_import_and_cancels_a_queued_export(page, people, worker, settings, tmp_path):
    project, _ = people
    settings.MEDIA_ROOT = tmp_path / "media"
    rows = b'{"id": "q1", "text": "Two plus two?"}\n{"id": "q2", "text": "Three plus three?"}\n'
    failed = import_job_create(
        project=project, kind="prompts", uploaded_file=SimpleUploadedFile("prompts.jsonl", rows),
        original_name="prompts.jsonl",
    )  # fmt: skip
    reason = "The worker running this import stopped reporting (no heartbeat for 90 s) after 2 attempt(s)."
    ImportJob.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED, attempts=2, message=reason)
    queued = ExportJob.objects.create(project=project, shape="pairs", file_format="jsonl")  # its worker never came

    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    imports = page.get_by_role("region", name="Imports")
    item = imports.get_by_test_id(f"import-{failed.pk}")
    assert reason in item.text_content()
    assert item.get_by_role("button", name=f"Cancel import {failed.pk}").count() == 0
    item.get_by_role("button", name=f"Retry import {failed.pk}").click()
    # The list polls while the job is live; the worker runs it from its stored file.
    item.filter(has_text="succeeded").wait_for(timeout=60_000)
    assert item.get_by_role("button").count() == 0
    assert Prompt.objects.filter(project=project).count() == 2

    exports = page.get_by_role("region", name="Exports")
    row = exports.get_by_test_id(f"export-{queued.pk}")
    row.get_by_role("button", name=f"Cancel export {queued.pk}").click()
    row.get_by_role("button", name=f"Retry export {queued.pk}").wait_for()
    assert "cancelled" in row.text_content()
    assert ExportJob.objects.get(pk=queued.pk).status == JobStatus.CANCELLED
    shot(page, "researcher-job-actions")
    assert page.errors == []
