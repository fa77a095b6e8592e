"""A researcher reads agreement over time and between annotators in the quality panel and promotes a unanimous
comparison to gold; an annotator below the gold warning threshold sees it on the labelling page and keeps working."""

from annotation.models import Comparison, Membership, Role
from annotation.quality.service import quality_recompute

from ..annotation.export_world import judge
from ..factories import UserFactory, make_comparison
from .conftest import shot, sign_in


def test_a_researcher_reads_agreement_and_promotes_a_unanimous_comparison_to_gold(page, people):
    project, users = people
    ben = UserFactory(username="ben")
    Membership.objects.create(project=project, user=ben, role=Role.ANNOTATOR)
    cara = UserFactory(username="<b>cara</b>")
    Membership.objects.create(project=project, user=cara, role=Role.ANNOTATOR)
    comparisons = [make_comparison(project) for _ in range(6)]
    for i, comparison in enumerate(comparisons):
        judge(comparison, users["anna"], winner=0, day=1)
        judge(comparison, ben, winner=0 if i < 5 else 1, day=2)
    judge(comparisons[0], cara, winner=0, day=3)
    quality_recompute(project_id=project.pk)

    sign_in(page, "rita")
    page.goto(f"/projects/{project.pk}")
    page.get_by_role("img", name="Krippendorff's alpha of choices per week, with the week's judgments").wait_for()
    grid = page.get_by_role("table", name="Cohen's kappa between each two annotators")
    assert grid.get_by_role("rowheader").all_text_contents() == ["<b>cara</b>", "anna", "ben"]  # names as text
    grid.get_by_title("anna × ben: kappa", exact=False).wait_for()
    grid.get_by_title("anna × <b>cara</b>: 1 shared comparison, too few for kappa (5 needed)").wait_for()

    ready = page.get_by_role("list", name="Ready to become gold")
    ready.get_by_role("button", name=f"Promote {comparisons[0].external_id}").click()
    promoted = page.get_by_role("list", name="Promoted to gold")
    promoted.get_by_text("promoted by rita", exact=False).wait_for()
    shot(page, "quality-gold-promoted")
    assert Comparison.objects.get(pk=comparisons[0].pk).is_gold
    promoted.get_by_role("button", name=f"Demote {comparisons[0].external_id}").click()
    page.get_by_text("None promoted from here yet.").wait_for()
    assert not Comparison.objects.get(pk=comparisons[0].pk).is_gold
    assert page.errors == []


def test_a_warned_annotator_sees_the_warning_while_labelling(page, people):
    project, users = people
    project.gold_settings = {"warn_below": 0.9, "min_gold": 1}
    project.save(update_fields=["gold_settings"])
    gold = make_comparison(project, is_gold=True, gold_answer={"tie": True})
    gold.gold_answer = {"winner": gold.candidate_ids[1]}
    gold.save()
    judge(gold, users["anna"], winner=0)  # wrong: 0 of 1, at most 79 % at 95 %
    make_comparison(project)
    quality_recompute(project_id=project.pk)

    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    banner = page.get_by_role("status", name="Your gold accuracy")
    banner.get_by_text("90% warn threshold", exact=False).wait_for()
    assert "Your gold accuracy:" not in banner.text_content()  # the project does not show it
    page.get_by_test_id("candidate-1").wait_for()  # the task is there: a warning does not block
    shot(page, "gold-warning-while-labelling")
    assert page.errors == []
