"""Every control is reachable by keyboard, has a name, and shows where focus is."""

from annotation.models import Prompt

from ..factories import make_comparison
from .conftest import sign_in

# For the element that has focus: its accessible name (roughly as assistive
# technology computes it) and whether a focus indicator is drawn.
FOCUSED_JS = """
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const byId = (ids) => ids.split(/\\s+/).map((id) => document.getElementById(id)?.textContent ?? "").join(" ");
  const labelledBy = el.getAttribute("aria-labelledby");
  const name = (
    el.getAttribute("aria-label")
    || (labelledBy && byId(labelledBy))
    || [...(el.labels ?? [])].map((l) => l.textContent).join(" ")
    || el.getAttribute("alt")
    || el.textContent
    || ""
  ).trim();
  const style = getComputedStyle(el);
  const outlined = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return { tag: el.tagName, type: el.type ?? "", name, outlined };
}
"""


def _walk(page, limit=80):
    """Tab round the page once, from wherever focus is: past the last control focus leaves the page, and the
    next Tab comes back at its first, so the controls before the starting point are walked too."""
    seen = []
    left = 0
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED_JS)
        if focused is None:
            left += 1
            if left > 1:
                break
            continue
        if seen and focused == seen[0]:
            break
        seen.append(focused)
    return seen


def test_the_workbench_and_dashboard_are_keyboard_reachable_labelled_and_show_focus(page, people):
    project, _ = people
    comparison = make_comparison(project, wanted=1)
    Prompt.objects.filter(pk=comparison.prompt_id).update(context=[{"role": "system", "content": "A passage. " * 200}])
    sign_in(page, "adam")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    page.keyboard.press("1")
    page.keyboard.press("c")  # the context panel open: its scrolling list is reachable too
    focused = _walk(page)
    tags = {f["tag"] for f in focused}
    assert {"BUTTON", "INPUT", "TEXTAREA", "SUMMARY", "OL"} <= tags
    assert [f for f in focused if not f["name"]] == []
    assert [f for f in focused if not f["outlined"]] == []
    # From the question (focused at each new task) the walk reaches the controls before and after it.
    assert any(f["name"].startswith("Guidelines") for f in focused)
    assert any(f["name"].startswith("Submit") for f in focused)

    page.goto(f"/projects/{project.pk}")
    page.get_by_test_id("count-judgments").wait_for()
    focused = _walk(page, limit=60)
    assert [f for f in focused if not f["name"]] == []
    assert [f for f in focused if not f["outlined"]] == []
    assert any(f["name"].startswith("Start a round") for f in focused)
