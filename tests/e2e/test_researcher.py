"""Researchers see the project's figures; annotators cannot reach those pages, in
the browser or through the API behind them; only admins get the round buttons."""

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Comparison

from ..factories import make_comparison
from .conftest import shot, sign_in


def _judge(project, user, key):
    claim = queue.comparison_claim(project=project, annotator_id=user.pk)
    comparison = Comparison.objects.get(pk=claim.comparison_id)
    judgment_submit(
        comparison=comparison,
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


def test_an_admin_gets_the_round_and_member_controls(page, people):
    project, _ = people
    sign_in(page, "adam")
    page.goto(f"/projects/{project.pk}")
    page.get_by_role("button", name="Start a round").wait_for()
    assert page.get_by_role("button", name="Add member").count() == 1
    assert page.get_by_label("Role of anna").input_value() == "annotator"
    shot(page, "admin-dashboard")


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
