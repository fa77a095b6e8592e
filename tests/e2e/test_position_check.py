"""A position check in a real browser: a comparison the annotator judged comes back a few tasks later with its
candidates the other way round on screen, looking like any task, and the repeat answer writes no judgment."""

from annotation.models import Comparison, Judgment, PositionCheck

from ..factories import make_comparison
from .conftest import shown_order, sign_in


def _on_screen(page) -> int:
    return int(page.get_by_test_id("task").get_attribute("data-comparison"))


def _answer(page, key: str, comparison: int) -> None:
    """Choose by key, submit, and wait until the next screen is up and the answer saved (in the background)."""
    page.keyboard.press(key)
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "id => document.querySelector('[data-testid=task]')?.dataset.comparison !== id", arg=str(comparison)
    )
    page.get_by_test_id("saving").wait_for(state="detached")


def test_a_judged_comparison_comes_back_swapped_on_screen_and_is_recorded_as_a_check(page, people):
    project, _ = people
    project.position_check_share, project.position_check_after_min, project.position_check_after_max = 1.0, 1, 1
    project.save()
    for i in range(5):
        make_comparison(project, texts=[f"Answer A{i}.", f"Answer B{i}."], wanted=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()

    seen: dict[int, list[int]] = {}
    while (comparison := _on_screen(page)) not in seen:
        assert len(seen) < 4, "no check came back within the tasks it waits for (and the one fetched ahead)"
        seen[comparison] = shown_order(page)
        _answer(page, "1", comparison)  # the left answer
    first = seen[comparison]
    assert shown_order(page) == first[::-1]
    judgments = Judgment.objects.count()
    judged = list(Comparison.objects.order_by("pk").values_list("judged", flat=True))

    _answer(page, "2", comparison)  # the same answer as before, now on the right
    check = PositionCheck.objects.get(comparison_id=comparison)
    assert (check.state, check.consistent, check.served_order) == ("answered", True, first[::-1])
    assert Judgment.objects.count() == judgments
    assert Judgment.objects.get(comparison_id=comparison).winner_id == first[0]
    assert list(Comparison.objects.order_by("pk").values_list("judged", flat=True)) == judged
