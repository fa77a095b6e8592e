"""An annotator who fails the project's gold checks sees on their project list that they are paused and why; a
researcher resumes them from the quality table and they can label again."""

from annotation.models import AnnotatorPause
from annotation.quality.service import quality_recompute

from ..annotation.export_world import judge
from ..factories import make_comparison
from .conftest import shot, sign_in


def test_a_paused_annotator_sees_why_and_a_researcher_resumes_them(page, people):
    project, users = people
    project.gold_settings = {"warn_below": 0.9, "pause_below": 0.85, "min_gold": 1, "show_own_accuracy": True}
    project.save(update_fields=["gold_settings"])
    gold = make_comparison(project, is_gold=True, gold_answer={"tie": True})
    gold.gold_answer = {"winner": gold.candidate_ids[1]}
    gold.save()
    judge(gold, users["anna"], winner=0)
    make_comparison(project)
    quality_recompute(project_id=project.pk)

    sign_in(page, "anna")
    row = page.get_by_test_id(f"project-{project.pk}")
    row.get_by_test_id("paused").get_by_text("85% pause threshold", exact=False).wait_for()
    assert row.get_by_test_id("own-gold").text_content() == "Your gold accuracy: 0 % of 1 checks (0 %–79 %)"
    shot(page, "gold-paused-annotator")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    quality = page.get_by_test_id("quality-anna")
    quality.get_by_role("button", name="Resume anna").click()
    quality.get_by_text("active", exact=True).wait_for()
    assert AnnotatorPause.objects.get(annotator=users["anna"]).resumed_by == users["rita"]
