"""A researcher exports judgments from the dashboard: picks the shape, format and filters, watches the job on a
real Celery worker reach done, and downloads a zip holding exactly the judgments asked for. Annotators get no
panel, and the API behind it refuses them too."""

import io
import json
import zipfile

import pytest
from celery.contrib.testing.worker import start_worker

from annotation.models import ExportJob, Judgment
from config.celery import app

from ..annotation.export_world import judge
from ..factories import make_comparison
from .conftest import shot, sign_in


@pytest.fixture
def worker(people):
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"], loglevel="WARNING") as w:
        yield w


@pytest.fixture
def judged(people):
    project, users = people
    for i in range(4):
        comparison = make_comparison(project, texts=[f"Yes, {i}.", f"No, {i}."])
        judge(comparison, users["anna"], winner=0, day=i)
        judge(comparison, users["rita"], winner=1, day=i)
    held_out = make_comparison(project)
    held_out.prompt.split = "eval"
    held_out.prompt.save()
    judge(held_out, users["anna"], winner=0)
    gold = make_comparison(project, is_gold=True, gold_answer={"tie": True})
    judge(gold, users["anna"], tie=True)
    return project


def test_a_researcher_exports_from_the_dashboard_and_downloads_the_rows(page, judged, worker, settings, tmp_path):
    project = judged
    settings.MEDIA_ROOT = tmp_path / "media"
    wanted = Judgment.objects.filter(project=project, comparison__is_gold=False, comparison__prompt__split="train")
    assert wanted.count() == 8  # not the held-out one, not the gold check
    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    panel = page.get_by_role("region", name="Exports")
    panel.get_by_label("Shape").select_option("judgments")
    panel.get_by_label("Format").select_option("jsonl")
    panel.get_by_label("Split").select_option("train")
    assert panel.get_by_label("Gold checks").input_value() == "exclude"
    panel.get_by_role("button", name="Start export").click()
    panel.get_by_role("status").filter(has_text="started").wait_for()
    job = ExportJob.objects.get(project=project)
    row = panel.get_by_test_id(f"export-{job.pk}")
    # The page polls the job; it reaches done without a reload.
    row.get_by_role("link", name=f"Download export {job.pk}").wait_for(timeout=60_000)
    assert row.get_by_role("progressbar", name=f"Export {job.pk}").get_attribute("value") == "1"
    assert "succeeded" in row.text_content()
    assert "8 / 8 judgments" in row.text_content()
    shot(page, "researcher-export-done")
    with page.expect_download() as download_info:
        row.get_by_role("link", name=f"Download export {job.pk}").click()
    archive = zipfile.ZipFile(io.BytesIO(download_info.value.path().read_bytes()))
    [data_name] = [name for name in archive.namelist() if name.endswith("data.jsonl")]
    rows = [json.loads(line) for line in archive.read(data_name).decode().splitlines()]
    assert len(rows) == wanted.count()
    assert sorted(r["annotator"] for r in rows) == ["anna"] * 4 + ["rita"] * 4
    assert any(name.endswith("README.md") for name in archive.namelist())
    assert page.errors == []


def test_pair_options_rounds_and_media_reach_the_server(page, people):
    project, _ = people
    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    panel = page.get_by_role("region", name="Exports")
    panel.get_by_label("Shape").select_option("judgments")
    assert panel.get_by_label("Pair form").count() == 0  # judgments have no pairs to shape
    panel.get_by_label("Shape").select_option("pairs")
    panel.get_by_label("Pair form").select_option("conversational")
    panel.get_by_label("Ties").select_option("soft")
    panel.get_by_label("Margin scale (strength → margin)").fill("0.5")
    panel.get_by_label("Rounds (ids, comma-separated").fill("none")
    panel.get_by_label("Media").select_option("pack")
    panel.get_by_role("button", name="Start export").click()
    panel.get_by_role("status").filter(has_text="started").wait_for()
    request = ExportJob.objects.get(project=project).request
    assert request["options"] == {
        "form": "conversational",
        "ties": "soft",
        "margin_scale": 0.5,
        "spreadsheet_safe": False,  # not a CSV
        "quality": False,
    }
    assert request["filters"]["rounds"] == ["none"]
    assert request["media"] == "pack"
    assert page.errors == []


def test_a_csv_export_is_spreadsheet_safe_unless_unticked(page, people):
    project, _ = people
    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    panel = page.get_by_role("region", name="Exports")
    assert panel.get_by_label("Safe for spreadsheets").count() == 0  # jsonl: nothing to neutralise
    panel.get_by_label("Format").select_option("csv")
    assert panel.get_by_label("Safe for spreadsheets").is_checked()
    panel.get_by_role("button", name="Start export").click()
    panel.get_by_role("status").filter(has_text="started").wait_for()
    assert ExportJob.objects.get(project=project).request["options"]["spreadsheet_safe"] is True
    panel.get_by_label("Safe for spreadsheets").uncheck()
    panel.get_by_role("button", name="Start export").click()
    for _ in range(100):  # the second job, once the request is through
        if ExportJob.objects.filter(project=project).count() == 2:
            break
        page.wait_for_timeout(100)
    assert ExportJob.objects.order_by("-id").first().request["options"]["spreadsheet_safe"] is False
    assert page.errors == []


def test_the_api_s_refusal_of_a_bad_filter_is_shown(page, people):
    project, _ = people
    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    panel = page.get_by_role("region", name="Exports")
    panel.get_by_label("Minimum agreement").fill("1.5")
    panel.get_by_role("button", name="Start export").click()
    alert = panel.get_by_role("alert")
    alert.wait_for()
    assert "min_agreement" in alert.text_content()
    assert "less than or equal to 1" in alert.text_content()
    assert not ExportJob.objects.filter(project=project).exists()


def test_an_annotator_gets_no_export_panel_and_the_api_refuses_them(page, people):
    project, _ = people
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}")
    page.get_by_test_id("not-allowed").wait_for()
    assert page.get_by_role("region", name="Exports").count() == 0
    assert page.get_by_role("button", name="Start export").count() == 0
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    assert page.request.get(f"/api/v1/projects/{project.pk}/exports/").status == 403
    refused = page.request.post(
        f"/api/v1/projects/{project.pk}/exports/",
        headers={"X-CSRFToken": csrf},
        data={"shape": "pairs", "file_format": "jsonl"},
    )
    assert refused.status == 403
    assert not ExportJob.objects.filter(project=project).exists()
