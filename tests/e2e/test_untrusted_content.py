"""Model outputs and imports are untrusted: whatever they contain, the browser runs
none of it, in the plain view, the Markdown view, the prompt, the chat context
and the guidelines."""

from annotation.models import Prompt

from ..factories import make_comparison
from .conftest import shot, sign_in

HOSTILE = [
    "<script>window.__pwned = 'script'</script> plain script tag",
    "<img src=x onerror=\"window.__pwned = 'img'\"> image with onerror",
    "[click me](javascript:window.__pwned='link') and <a href=\"javascript:window.__pwned='a'\">raw link</a>",
    "Markdown with HTML:\n\n<div onmouseover=\"window.__pwned='div'\">hover</div>\n\n"
    "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>\n\n"
    '![img](x "t") <svg onload="window.__pwned=\'svg\'"></svg> **bold**',
]


def _assert_inert(page):
    assert page.evaluate("window.__pwned") is None
    dangerous = page.locator(
        "[data-testid=task] script, [data-testid=task] iframe, [data-testid=task] svg, "
        "[data-testid=task] img, [data-testid=task] [onerror], [data-testid=task] [onmouseover]"
    )
    assert dangerous.count() == 0
    hrefs = page.locator("[data-testid=task] a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript")]


def test_candidates_with_scripts_handlers_and_javascript_links_execute_nothing(strict_page, people):
    page = strict_page  # under the app's Content-Security-Policy, which must block nothing the app itself does
    project, _ = people
    project.guidelines = HOSTILE[1] + "\n\n" + HOSTILE[3]
    project.save()
    first = make_comparison(project, texts=HOSTILE[:2], wanted=1, priority=2)
    Prompt.objects.filter(pk=first.prompt_id).update(text=HOSTILE[2], context=[{"role": "user", "content": HOSTILE[0]}])
    make_comparison(project, texts=HOSTILE[2:], wanted=1, priority=1)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()

    # Plain view: the text is shown verbatim, as text.
    body = page.get_by_test_id("task").inner_text()
    assert "<script>window.__pwned = 'script'</script>" in body
    _assert_inert(page)

    # Markdown view of the same task, then guidelines. HTML shows as its text: a candidate that is all HTML
    # must not look empty to the annotator judging it.
    page.keyboard.press("m")
    page.locator(".markdown").first.wait_for()
    _assert_inert(page)
    markdown = page.get_by_test_id("task").locator(".markdown").all_inner_texts()
    assert any("<script>window.__pwned = 'script'</script> plain script tag" in text for text in markdown)
    assert any("<img src=x onerror=" in text for text in markdown)
    page.keyboard.press("h")
    page.get_by_role("dialog", name="Guidelines").wait_for()
    assert page.locator(".overlay img, .overlay div[onmouseover], .overlay iframe").count() == 0
    page.keyboard.press("Escape")

    # The second task: javascript: links and HTML inside Markdown.
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"document.querySelector('[data-testid=task]')?.dataset.comparison !== '{first.pk}'")
    page.get_by_test_id("task").wait_for()
    page.keyboard.press("m")  # the view choice is per task: Markdown again
    page.locator(".markdown").first.wait_for()
    _assert_inert(page)
    assert page.get_by_test_id("task").locator("strong", has_text="bold").count() == 1  # Markdown still renders
    link = page.get_by_test_id("task").get_by_text("click me")
    assert link.count() == 1 and link.evaluate("el => el.closest('a')") is None  # no link left to follow
    link.click()
    page.wait_for_timeout(200)
    _assert_inert(page)
    shot(page, "untrusted-markdown")
    assert dialogs == [] and page.errors == []
