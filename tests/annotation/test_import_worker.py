"""A large import runs on a real Celery worker over the configured broker
(Redis in CI, the embedded file transport locally) and reports its progress."""

import json
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Comparison, ImportJob, ImportStatus, Prompt
from config.celery import app

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"], loglevel="WARNING") as w:
        yield w


def bundle(rows: int, bad_line: int | None = None) -> bytes:
    lines = []
    for i in range(rows):
        row = {
            "id": f"q{i}",
            "text": f"Question {i}?",
            "candidates": [{"id": f"q{i}-a", "text": "Yes."}, {"id": f"q{i}-b", "text": "No."}],
            "comparisons": "pairs",
        }
        if i + 1 == bad_line:
            row["candidates"] = "not a list"
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def wait_for(job_id: int, timeout: float = 60) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED):
            return job
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not finish: {job.status} {job.phase}")


def test_a_large_upload_is_imported_by_the_worker_with_progress(worker, api, researcher, project, settings):
    settings.IMPORT_INLINE_MAX_BYTES = 1000
    upload = SimpleUploadedFile("big.jsonl", bundle(300), content_type="application/jsonl")
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{project.pk}/imports/", {"file": upload, "kind": "bundle"}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    job = wait_for(response.json()["id"])
    assert job.status == ImportStatus.SUCCEEDED, (job.message, job.errors)
    assert (job.rows_total, job.rows_done) == (300, 300)
    status = api.get(f"/api/v1/imports/{job.pk}/").json()
    assert status["status"] == "succeeded" and status["rows_done"] == 300
    assert Comparison.objects.filter(project=project).count() == 300


def test_a_large_upload_with_a_bad_row_imports_nothing_and_names_the_line(worker, api, researcher, project, settings):
    settings.IMPORT_INLINE_MAX_BYTES = 1000
    upload = SimpleUploadedFile("big.jsonl", bundle(300, bad_line=217), content_type="application/jsonl")
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{project.pk}/imports/", {"file": upload, "kind": "bundle"}, format="multipart"
    )
    assert response.status_code == 202
    job = wait_for(response.json()["id"])
    assert job.status == ImportStatus.FAILED
    assert [e["line"] for e in job.errors] == [217]
    assert Prompt.objects.filter(project=project).count() == 0
