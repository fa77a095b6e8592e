"""Imports and exports whose Celery worker is killed (SIGKILL, the worker and its pool process) half-way: the job
does not stay "running" forever; the sweep has it taken over by a live worker, which runs it again from the start
of its transaction, and the data is all there (or, before that, none of it)."""

import io
import json
import os
import signal
import time
import zipfile

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation import jobs
from annotation.exporters import export_job_create, export_request_parse
from annotation.importers import import_job_create
from annotation.models import Candidate, Comparison, ExportJob, ImportJob, JobStatus, Prompt
from annotation.tasks import export_run_task, import_run_task
from config.celery import app

from ..workers import worker_start
from .export_world import judged_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 4500  # three batches of the importer: the worker dies after writing the first, inside the transaction
STALE = 2  # seconds without a heartbeat before a running job counts as abandoned (test and worker alike)


@pytest.fixture
def job_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.JOB_HEARTBEAT_STALE_SECONDS = STALE
    return settings


def bundle(rows: int) -> bytes:
    lines = (
        json.dumps({"id": f"q{i}", "text": f"Question {i}?", "comparisons": "pairs",
                    "candidates": [{"id": f"q{i}-a", "text": "Yes."}, {"id": f"q{i}-b", "text": "No."}]})
        for i in range(rows)
    )  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def killed_half_way(run_task, job_id: int, tmp_path) -> None:
    """Run the job's task on a worker that stops half-way (tests/annotation/slow_jobs_celery.py), then SIGKILL
    the worker and its pool process together: no chance to clean up."""
    app.control.purge()
    marker = tmp_path / "half-way"
    log = tmp_path / "worker.log"
    worker = worker_start(
        app="tests.annotation.slow_jobs_celery",
        queue="default",
        log=log,
        env={"SLOW_JOB_MARKER": str(marker), "JOB_HEARTBEAT_STALE_SECONDS": str(STALE)},
    )
    try:
        run_task.delay(job_id)
        wait_until(lambda: marker.exists() or worker.poll() is not None, 120, "the job to get half-way")
        assert marker.exists(), log.read_text()
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)


def swept_and_finished(model, job_id: int, kind: str):
    """Once its heartbeat is stale the sweep requeues the job, and a live worker takes it over."""
    time.sleep(STALE + 0.5)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"], loglevel="WARNING"):
        assert (kind, job_id) in jobs.jobs_reap_stale()
        return wait_until(
            lambda: (job := model.objects.get(pk=job_id)).status not in (JobStatus.QUEUED, JobStatus.RUNNING) and job,
            120,
            f"the {kind} to finish",
        )


def test_an_import_whose_worker_is_killed_mid_write_is_taken_over_and_imports_everything_once(
    job_settings, project, tmp_path
):
    job = import_job_create(
        project=project, kind="bundle", uploaded_file=SimpleUploadedFile("big.jsonl", bundle(ROWS)),
        original_name="big.jsonl",
    )  # fmt: skip

    killed_half_way(import_run_task, job.pk, tmp_path)

    # The first batch was written inside the import's transaction, which died with the worker: nothing is there,
    # and the job still says running (today it would stay so forever: nothing looks at it again).
    dead = ImportJob.objects.get(pk=job.pk)
    assert (dead.status, dead.phase, dead.attempts) == (JobStatus.RUNNING, "writing", 1)
    assert Prompt.objects.filter(project=project).count() == 0

    done = swept_and_finished(ImportJob, job.pk, "import")

    assert done.status == JobStatus.SUCCEEDED, (done.message, done.errors)
    assert done.attempts == 2 and done.result["comparisons"] == {"created": ROWS, "unchanged": 0}
    assert Prompt.objects.filter(project=project).count() == ROWS
    assert Candidate.objects.filter(project=project).count() == 2 * ROWS
    assert Comparison.objects.filter(project=project).count() == ROWS


def test_an_export_whose_worker_is_killed_mid_write_is_taken_over_and_its_archive_is_complete(job_settings, tmp_path):
    world = judged_project()
    job = export_job_create(project=world.project, request=export_request_parse(shape="pairs", file_format="jsonl"))

    killed_half_way(export_run_task, job.pk, tmp_path)

    dead = ExportJob.objects.get(pk=job.pk)
    assert (dead.status, dead.attempts, dead.file.name) == (JobStatus.RUNNING, 1, "")
    assert not (job_settings.MEDIA_ROOT / "exports").exists()  # no archive, not even half of one

    done = swept_and_finished(ExportJob, job.pk, "export")

    assert done.status == JobStatus.SUCCEEDED, done.message
    assert done.attempts == 2
    with done.file.open("rb") as f:
        archive = zipfile.ZipFile(io.BytesIO(f.read()))
    rows = archive.read("data.jsonl").decode().splitlines()
    assert len(rows) == done.numbers["rows"] > 0
    assert [p.name for p in (job_settings.MEDIA_ROOT / "exports").rglob("*.zip")] == [os.path.basename(done.file.name)]
