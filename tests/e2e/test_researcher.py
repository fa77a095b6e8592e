"""Researchers see the project's figures; annotators cannot reach those pages, in
the browser or through the API behind them; only admins get the round buttons."""

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Comparison, Prompt
from training.models import ModelVersion, Round

from ..factories import make_comparison
from .conftest import shot, sign_in


def _judge(project, user, key):
    claim = queue.comparison_claim(project_id=project.pk, annotator_id=user.pk)
    comparison = Comparison.objects.get(pk=claim.comparison_id)
    judgment_submit(
        comparison_id=comparison.pk,
        annotator_id=user.pk,
        answer=JudgmentInput(winner=comparison.candidate_ids[0]),
        idempotency_key=key,
    )


def test_a_researcher_sees_the_counts(page, people):
    project, users = people
    for i in range(4):
        make_comparison(project, wanted=1, priority=i)
    _judge(project, users["anna"], "a1")
    _judge(project, users["anna"], "a2")
    _judge(project, users["rita"], "r1")
    sign_in(page, "rita")
    page.get_by_test_id(f"project-{project.pk}").get_by_role("link", name="Dashboard").click()
    page.get_by_test_id("count-judgments").wait_for()
    assert page.get_by_test_id("count-comparisons").text_content() == "4"
    assert page.get_by_test_id("count-judgments").text_content() == "3"
    assert page.get_by_test_id("queue-depth").text_content() == "1"
    assert page.get_by_test_id("annotator-anna").locator("td").nth(1).text_content() == "2"
    assert page.get_by_test_id("annotator-rita").locator("td").nth(1).text_content() == "1"
    assert page.get_by_role("img", name="Judgments per day").count() == 1
    # Researchers are not admins: no round buttons, no member editing.
    assert page.get_by_role("button", name="Start a round").count() == 0
    assert page.get_by_role("button", name="Add member").count() == 0
    shot(page, "researcher-dashboard")
    assert page.errors == []


def test_an_admin_sees_rounds_live_cancels_one_and_sees_metrics_by_version(page, people, settings, tmp_path):
    project, _ = people
    settings.TRAINING_ARTIFACTS_DIR = tmp_path
    for version, accuracy in ((1, 0.61), (2, 0.68)):
        ModelVersion.objects.create(
            project=project,
            kind="reward",
            version=version,
            base_model="tiny",
            artifact_path=f"reward-{version}",
            judgment_snapshot_id=f"s{version}",
            metrics={"eval": {"accuracy": accuracy, "member_accuracy": accuracy - 0.01, "ece": 0.05}},
        )
    running = Round.objects.create(project=project, status="running", step="training", progress=0.25)
    sign_in(page, "adam")
    page.goto(f"/projects/{project.pk}")
    page.get_by_role("button", name="Start a round").wait_for()
    assert page.get_by_role("button", name="Add member").count() == 1
    assert page.get_by_label("Role of anna").input_value() == "annotator"
    row = page.get_by_role("row", name=f"#{running.pk}")
    assert row.get_by_role("progressbar").get_attribute("value") == "0.25"
    assert "training" in row.text_content()
    # The worker reports progress; the page follows without a reload.
    Round.objects.filter(pk=running.pk).update(step="evaluating", progress=0.9)
    page.wait_for_function(
        f"[...document.querySelectorAll('tr')].some(r => r.textContent.includes('#{running.pk}') "
        "&& r.textContent.includes('evaluating'))"
    )
    chart = page.get_by_role("img", name="Held-out metrics by model version")
    assert chart.locator("circle").count() == 6  # three metrics × two versions
    shot(page, "admin-dashboard")
    row.get_by_role("button", name=f"Cancel round {running.pk}").click()
    for _ in range(50):
        running.refresh_from_db()
        if running.cancel_requested:
            break
        page.wait_for_timeout(100)
    assert running.cancel_requested


def test_a_researcher_imports_a_file_and_sees_it_done(page, people, tmp_path, settings):
    project, _ = people
    settings.MEDIA_ROOT = tmp_path / "media"
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_text(
        '{"id": "q1", "text": "2 + 2?", "candidates": [{"id": "a", "text": "4"}, {"id": "b", "text": "5"}], '
        '"comparisons": "pairs"}\n'
    )
    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    page.get_by_label("File (.jsonl, .csv, .parquet)").set_input_files(str(bundle))
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("succeeded").first.wait_for()
    assert Prompt.objects.filter(project=project, external_id="q1").exists()
    page.get_by_test_id("count-comparisons").filter(has_text="1").wait_for()  # the counts follow


def test_an_annotator_cannot_reach_researcher_or_admin_pages(page, people):
    project, _ = people
    sign_in(page, "anna")
    assert page.get_by_test_id(f"project-{project.pk}").get_by_role("link", name="Dashboard").count() == 0
    page.goto(f"/projects/{project.pk}")
    page.get_by_test_id("not-allowed").wait_for()
    assert page.get_by_test_id("count-judgments").count() == 0
    assert page.get_by_role("button", name="Start a round").count() == 0
    shot(page, "annotator-refused")
    # The server refuses the calls themselves, with the browser's own session.
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for path in ("stats/", "members/", "rounds/", "imports/", "comparisons/"):
        assert page.request.get(f"/api/v1/projects/{project.pk}/{path}").status == 403, path
    refused = page.request.post(f"/api/v1/projects/{project.pk}/rounds/", headers={"X-CSRFToken": csrf})
    assert refused.status == 403
