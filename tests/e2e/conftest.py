"""Browser tests: Debian's Chromium driven by Playwright against the live app
(pytest-django's live_server, the real database). Marked ``browser``: run them
alone with ``pytest -m browser``. Screenshots go to test-artifacts/ (git-ignored).

Never downloads a browser: Chromium is /usr/bin/chromium (``apt-get install chromium``).
"""

from pathlib import Path

import pytest
from django.conf import settings

from annotation.models import Role

from ..factories import MembershipFactory, ProjectFactory, UserFactory
from .browser import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never let Playwright download one)")
    if not (settings.FRONTEND_DIST_DIR / "index.html").exists():
        pytest.fail("The web app is not built: make install (or cd frontend && npm ci && npm run build)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which Django
    # would take for an async context and refuse database calls in (the tests' own
    # checks). Allowed for these modules only; the rest of the suite keeps the guard.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


def _page(browser, live_server, *, bypass_csp: bool):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}, bypass_csp=bypass_csp
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # What the app's Content-Security-Policy blocked (a script, a style, a fetch) is an error of the page too.
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.errors = errors
    return context, page


@pytest.fixture
def page(browser, live_server):
    """A page that ignores the app's Content-Security-Policy: Playwright's ``wait_for_function`` evaluates its
    string in the page, which the policy (script-src 'self', no eval) forbids. ``strict_page`` keeps it."""
    context, page = _page(browser, live_server, bypass_csp=True)
    yield page
    context.close()


@pytest.fixture
def strict_page(browser, live_server):
    """A page under the app's Content-Security-Policy, as a user's browser is."""
    context, page = _page(browser, live_server, bypass_csp=False)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, username: str) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("signed-in-as").wait_for()


@pytest.fixture
def people(transactional_db):
    project = ProjectFactory(
        name="Grounded answers", guidelines="# Guidelines\n\nPrefer **grounded** answers.", lease_seconds=600
    )
    users = {}
    for name, role in (("anna", Role.ANNOTATOR), ("rita", Role.RESEARCHER), ("adam", Role.ADMIN)):
        users[name] = UserFactory(username=name)
        MembershipFactory(project=project, user=users[name], role=role)
    return project, users


# JavaScript: select [start, end) of a candidate's text (code points, as the server counts)
# the way a user's mouse would, then release the mouse button there.
SELECT_JS = """
([position, start, end]) => {
  const box = document.querySelector(`[data-testid=candidate-${position}] [data-testid=candidate-text]`);
  const text = box.textContent;
  const toUtf16 = (cp) => {
    let i = 0;
    for (let n = 0; n < cp; n++) i += text.codePointAt(i) > 0xffff ? 2 : 1;
    return i;
  };
  const [from, to] = [toUtf16(start), toUtf16(end)];
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  const points = []; let seen = 0;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const length = node.textContent.length;
    if (points.length === 0 && from < seen + length) points.push([node, from - seen]);
    if (points.length === 1 && to <= seen + length) { points.push([node, to - seen]); break; }
    seen += length;
  }
  const range = document.createRange();
  range.setStart(...points[0]); range.setEnd(...points[1]);
  const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
  box.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
}
"""


def select_text(page, position: int, start: int, end: int) -> None:
    page.evaluate(SELECT_JS, [position, start, end])


def shown_order(page) -> list[int]:
    """The candidate ids in the order the page shows them."""
    ids = page.locator("article[data-candidate]").evaluate_all("els => els.map(e => e.dataset.candidate)")
    return [int(x) for x in ids]
