"""Parallel exports (worker processes, each exporting a range of comparisons in one database snapshot) write
exactly what a serial export writes; a failing worker fails the export and leaves nothing behind."""

import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.db import connection

from annotation.exporters import FORMATS, Export, card_numbers, export_job_create, export_job_run, export_request_parse
from annotation.exporters import card as export_card
from annotation.exporters import core as export_core
from annotation.exporters import parallel as export_parallel
from annotation.exporters import source as export_source
from annotation.exporters.formats import DATA_FILE, FolderTarget
from annotation.models import ExportStatus, Judgment

from ..factories import make_comparison
from .export_world import judge, judged_project

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("parallel exports read one exported snapshot: Postgres only (SQLite exports are serial)")


@pytest.fixture
def many_ranges(monkeypatch):
    """Ranges of about 2 judgments, any export worth processes, chunks cut inside comparisons: many ranges."""
    monkeypatch.setattr(export_core, "RANGE_JUDGMENTS", 2)
    monkeypatch.setattr(export_core, "PARALLEL_MIN_JUDGMENTS", 1)
    monkeypatch.setattr(export_source, "CHUNK_ROWS", 3)
    handed_out = []
    results = export_parallel.Workers.results

    def counted(self, argument, jobs):
        handed_out.append((len(self), len(jobs)))
        return results(self, argument, jobs)

    monkeypatch.setattr(export_parallel.Workers, "results", counted)
    return handed_out


@pytest.fixture
def world():
    world = judged_project()
    # More comparisons, from more sources than the card lists (SOURCE_KEYS_LIMIT is lowered in the tests).
    anna, bob, cara = world.users
    for i in range(6):
        comparison = make_comparison(world.project, texts=[f"Extra A{i}.", f"Extra B{i}."])
        comparison.prompt.metadata = {"source": f"source {i % 4}", "license": "MIT"}
        comparison.prompt.save()
        judge(comparison, anna, winner=i % 2, strength=1 + i % 3, day=20 + i, spans=[(0, 1.0, 3.0, "vague")])
        judge(comparison, bob, winner=0, day=30 + i)
        if i % 3 == 0:
            judge(comparison, cara, tie=True, day=40 + i)
    return world


def exported(world, tmp_path, processes, *, shape, file_format, **kwargs):
    request = export_request_parse(shape=shape, file_format=file_format, **kwargs)
    folder = tmp_path / f"{processes}-{shape}-{file_format}"
    export = Export(world.project, request, FolderTarget(folder), processes=processes)
    for _ in export.run():
        pass
    return folder


def assert_same_export(serial: Path, parallel: Path, file_format: str):
    data = DATA_FILE[file_format]
    if file_format in ("jsonl", "csv"):
        assert (parallel / data).read_bytes() == (serial / data).read_bytes()
    elif file_format == "parquet":
        assert pq.read_table(parallel / data).equals(pq.read_table(serial / data))
    else:
        read = [pa.ipc.open_stream((folder / data).read_bytes()).read_all() for folder in (serial, parallel)]
        assert read[1].equals(read[0])
        for name in ("dataset_info.json", "state.json"):
            assert (parallel / name).read_text() == (serial / name).read_text()
    cards = [(folder / "README.md").read_text() for folder in (serial, parallel)]
    assert card_numbers(cards[1]) == card_numbers(cards[0])
    assert cards[1].split("## Shape")[1] == cards[0].split("## Shape")[1]  # all but the export's time


LATER = "2026-03-04"  # the judgments of the first days are left out
REQUESTS = {
    "judgments": {"shape": "judgments", "filters": {"gold": "include"}},
    "pairs": {"shape": "pairs", "options": {"ties": "soft", "margin_scale": 0.5}, "filters": {"min_agreement": 0.5}},
    "conversational pairs, with gold": {
        "shape": "pairs", "options": {"form": "conversational"}, "filters": {"gold": "include", "date_from": LATER}
    },
    "rankings": {"shape": "rankings", "filters": {"annotators": "anna,cara"}},
    "consensus": {"shape": "consensus", "filters": {"split": "train"}},
}  # fmt: skip


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("request_name", REQUESTS)
def test_a_parallel_export_writes_what_a_serial_one_writes(
    world, tmp_path, monkeypatch, many_ranges, file_format, request_name
):
    monkeypatch.setattr(export_card, "SOURCE_KEYS_LIMIT", 3)
    request = REQUESTS[request_name]
    serial = exported(world, tmp_path, 1, file_format=file_format, **request)
    parallel = exported(world, tmp_path, 3, file_format=file_format, **request)
    assert_same_export(serial, parallel, file_format)
    [(processes, ranges)] = many_ranges
    assert processes == 3 and ranges >= 5


@pytest.mark.parametrize("processes", [2, 3])
def test_a_smaller_export_is_cut_into_enough_ranges_to_keep_every_process_busy(
    world, tmp_path, monkeypatch, many_ranges, processes
):
    # Ranges of at most 1,000 judgments would make this project one range, run by one process while the others
    # idle: it is cut into RANGES_PER_PROCESS ranges per process instead (the last range takes the remainder).
    monkeypatch.setattr(export_core, "RANGE_JUDGMENTS", 1000)
    monkeypatch.setattr(export_core, "RANGES_PER_PROCESS", 2)
    request = {"shape": "judgments", "filters": {"gold": "include"}}
    serial = exported(world, tmp_path, 1, file_format="jsonl", **request)
    parallel = exported(world, tmp_path, processes, file_format="jsonl", **request)
    assert_same_export(serial, parallel, "jsonl")
    judgments = Judgment.objects.filter(project=world.project).count()
    assert judgments > 4 * 2 * processes  # enough for every range to hold at least two
    [(used, ranges)] = many_ranges
    assert used == processes
    assert processes < ranges <= 2 * processes + 1


def test_the_cards_sources_keep_the_first_ones_in_comparison_order_across_ranges(
    world, tmp_path, monkeypatch, many_ranges
):
    monkeypatch.setattr(export_card, "SOURCE_KEYS_LIMIT", 4)
    serial = exported(world, tmp_path, 1, shape="judgments", file_format="jsonl")
    parallel = exported(world, tmp_path, 2, shape="judgments", file_format="jsonl")
    numbers = card_numbers((parallel / "README.md").read_text())
    assert numbers == card_numbers((serial / "README.md").read_text())
    # In comparison order: 6 from "unit tests", the ranked one without a source, then sources 0, 1, 2, 3, 0, 1
    # (in later ranges): 0 and 1 fill the 4 places, 2 and 3 are "other". Most comparisons first.
    assert numbers["sources"] == [
        {"source": "unit tests", "license": "CC-BY-4.0", "comparisons": 6},
        {"source": "source 0", "license": "MIT", "comparisons": 2},
        {"source": "source 1", "license": "MIT", "comparisons": 2},
        {"source": "other", "license": "—", "comparisons": 2},
        {"source": "—", "license": "—", "comparisons": 1},
    ]
    assert numbers["agreement"]["comparisons_with_agreement"] == 10


def test_packed_media_are_the_same_files_as_a_serial_export_packs(world, tmp_path, settings, many_ranges):
    from django.core.files.base import ContentFile

    from annotation.models import Candidate

    settings.MEDIA_ROOT = tmp_path / "media-root"
    for n, comparison in enumerate(world.pairwise[:4]):
        image = Candidate.objects.get(pk=comparison.candidate_ids[n % 2])
        image.media.save(f"image-{n}.png", ContentFile(f"image {n}".encode()))
        image.save()
    serial = exported(world, tmp_path, 1, shape="rankings", file_format="jsonl", media="pack")
    parallel = exported(world, tmp_path, 3, shape="rankings", file_format="jsonl", media="pack")
    assert_same_export(serial, parallel, "jsonl")
    packed = sorted(p.relative_to(parallel).as_posix() for p in (parallel / "media").rglob("*") if p.is_file())
    assert len(packed) == 4
    assert packed == sorted(p.relative_to(serial).as_posix() for p in (serial / "media").rglob("*") if p.is_file())


def test_judgments_added_or_removed_while_it_runs_do_not_change_the_export(world, tmp_path, monkeypatch, many_ranges):
    before = exported(world, tmp_path, 1, shape="judgments", file_format="jsonl")
    cut = export_core.comparison_ranges

    def meanwhile(*args):
        ranges = cut(*args)  # in the snapshot the workers will read; the rest of the world goes on
        late = make_comparison(world.project, texts=["Late A.", "Late B."])
        judge(late, world.users[0], winner=0, day=60)
        judge(world.ranked, world.users[1], ranking=[0, 1, 2], day=61)
        Judgment.objects.filter(comparison=world.pairwise[1]).delete()
        return ranges

    monkeypatch.setattr(export_core, "comparison_ranges", meanwhile)
    during = exported(world, tmp_path, 3, shape="judgments", file_format="jsonl")
    assert_same_export(before, during, "jsonl")


def children() -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()}


def exports_in_temp() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("tandem-export-*")}


@pytest.mark.parametrize("failure", ["raises", "dies"])
def test_a_failing_worker_fails_the_job_with_its_message_and_leaves_nothing_behind(
    world, tmp_path, settings, monkeypatch, many_ranges, failure
):
    settings.MEDIA_ROOT = tmp_path / "media-root"
    doomed = world.pairwise[3].external_id
    rows = export_core.RowBuilder._judgments

    def breaks_on_one_comparison(self, group):
        if group.judgments[0].comparison_external_id == doomed:
            if failure == "dies":
                os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
            raise ValueError(f"cannot export {doomed}")
        return rows(self, group)

    monkeypatch.setattr(export_core.RowBuilder, "_judgments", breaks_on_one_comparison)
    before_children, before_temp = children(), exports_in_temp()
    request = export_request_parse(shape="judgments", file_format="parquet")
    job = export_job_create(project=world.project, request=request)
    with pytest.raises(export_parallel.WorkerFailed) as caught:
        export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED
    expected = f"ValueError: cannot export {doomed}" if failure == "raises" else "ended without finishing its work"
    assert expected in str(caught.value) and expected in job.message
    assert many_ranges  # it did run in worker processes
    assert children() == before_children and exports_in_temp() == before_temp


@pytest.mark.slow
def test_a_job_on_a_real_prefork_celery_worker_exports_in_worker_processes(world, tmp_path):
    # Celery's prefork pool processes are daemonic, and multiprocessing refuses to start children from them.
    from django.conf import settings as django_settings

    from annotation.tasks import export_run_task
    from config.celery import app

    from ..workers import ROOT, database_url

    app.control.purge()
    request = export_request_parse(shape="pairs", file_format="jsonl", options={"ties": "soft"})
    job = export_job_create(project=world.project, request=request)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "TANDEM_VAR_DIR": str(django_settings.VAR_DIR),
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
        "SECRET_KEY": django_settings.SECRET_KEY,
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "EXPORT_PROCESSES": "3",
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.annotation.export_celery", "worker", "-Q", "default",
         "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "-n", f"export-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        export_run_task.delay(job.pk)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in (ExportStatus.SUCCEEDED, ExportStatus.FAILED):
                break
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert job.status == ExportStatus.SUCCEEDED, (job.status, job.message, log.read_text())
    assert "ranges in 3 processes" in log.read_text()
    with job.file.open("rb") as f:
        archive = zipfile.ZipFile(io.BytesIO(f.read()))
    serial = exported(world, tmp_path, 1, shape="pairs", file_format="jsonl", options={"ties": "soft"})
    assert archive.read("data.jsonl") == (serial / "data.jsonl").read_bytes()
    assert card_numbers(archive.read("README.md").decode()) == card_numbers((serial / "README.md").read_text())
