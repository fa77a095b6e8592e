"""An annotator labels by keyboard, and what lands in the database is exactly what
they entered (offsets in code points, the shown order, ratings, strength, notes)."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from annotation import queue
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Assignment, Judgment, Prompt, Role

from ..factories import MembershipFactory, UserFactory, make_comparison
from .conftest import select_text, shot, shown_order, sign_in

TASKS = [
    # Emoji (astral and ZWJ sequences) before the marked words.
    ["🪐👨‍👩‍👧 Pluto is a planet: a wrong claim.", "Pluto 🪐 is a dwarf planet; that claim is right."],
    # CJK and a flag (two regional indicators).
    ["東京は日本の首都です 🇯🇵 claim", "日本の首都は京都です claim"],
    # Combining marks (decomposed é) in one, precomposed in the other.
    ["Cafe\u0301 au lait: re\u0301sume\u0301 claim.", "Café: résumé claim."],
]


def _text(page, position: int) -> str:
    return page.get_by_test_id(f"candidate-{position}").get_by_test_id("candidate-text").text_content()


def _mark(page, position, start, end, category_key: str, note: str = "") -> None:
    select_text(page, position, start, end)
    page.get_by_test_id("span-picker").wait_for()
    page.keyboard.press(category_key)
    note_field = page.locator("[data-testid=span-note]:focus")
    note_field.wait_for()
    if note:
        page.keyboard.type(note)
    page.keyboard.press("Enter")


def _rate(page, first: int, second: int) -> None:
    """G focuses the first rating; Space picks its lowest value, arrows move; Tab goes to the next."""
    page.keyboard.press("g")
    for i, value in enumerate((first, second)):
        if i:
            page.keyboard.press("Tab")
        page.keyboard.press("Space")
        for _ in range(value - 1):
            page.keyboard.press("ArrowRight")


def _rationale(page, text: str) -> None:
    page.keyboard.press("/")
    page.keyboard.type(text)
    page.keyboard.press("Escape")


def _submit_and_wait(page, comparison: int) -> None:
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "id => !document.querySelector(`[data-testid=task][data-comparison='${id}']`)", arg=str(comparison)
    )


def test_an_annotator_labels_three_tasks_by_keyboard_and_the_database_has_exactly_that(page, people):
    project, users = people
    comparisons = [make_comparison(project, texts=texts, priority=10 - i, wanted=1) for i, texts in enumerate(TASKS)]
    sign_in(page, "anna")
    row = page.get_by_test_id(f"project-{project.pk}")
    assert row.get_by_test_id("remaining").text_content() == "3"
    shot(page, "annotator-projects")
    row.get_by_role("link", name="Label").click()
    expected = []

    # Task 1: candidate 1 wins, strength 2, ratings 3 and 2, two overlapping spans, a rationale.
    page.get_by_test_id("task").wait_for()
    assert page.get_by_test_id("lease").text_content().startswith("Lease: ")
    shown = shown_order(page)
    comparison = int(page.get_by_test_id("task").get_attribute("data-comparison"))
    assert comparison == comparisons[0].pk and sorted(shown) == sorted(comparisons[0].candidate_ids)
    text = _text(page, 1)
    claim = text.index("claim")
    planet = text.index("planet")
    page.keyboard.press("1")
    for _ in range(3):
        page.keyboard.press("]")
    _rate(page, 3, 2)
    _mark(page, 1, claim, claim + len("claim"), "1", note="Made up 🤔")
    _mark(page, 1, planet, claim + len("claim"), "2")
    assert page.get_by_title("Incorrect + Irrelevant").text_content() == "claim"  # the overlap is visible
    # The page says how to mark a span, and lists marks by category, candidate and text, not by offsets.
    hint = page.get_by_test_id("span-hint").text_content()
    assert "select words in an answer, then press its category’s number" in hint
    assert page.locator(".span-label").all_text_contents() == [
        "Incorrect · candidate A: “claim”",
        f"Irrelevant · candidate A: “{text[planet : claim + 5]}”",
    ]
    assert page.get_by_test_id("strength-value").text_content() == "Candidate A is better."
    _rationale(page, "Grounded in the passage, ünïcödé ✓")
    shot(page, "workbench-task-1")
    expected.append(
        {
            "winner": shown[0],
            "tie": False,
            "strength": 2,
            "ratings": {str(shown[0]): {"helpful": 3}, str(shown[1]): {"helpful": 2}},
            "spans": [
                (shown[0], claim, claim + 5, "incorrect", "Made up 🤔"),
                (shown[0], planet, claim + 5, "irrelevant", ""),
            ],
            "rationale": "Grounded in the passage, ünïcödé ✓",
            "shown_order": shown,
        }
    )
    _submit_and_wait(page, comparison)

    # Task 2: candidate 2 wins, strength 3 (] past the top stays there), a span in CJK text, no ratings.
    page.get_by_test_id("task").wait_for()
    shown = shown_order(page)
    comparison = int(page.get_by_test_id("task").get_attribute("data-comparison"))
    text = _text(page, 2)
    capital = text.index("首都")
    page.keyboard.press("2")
    for _ in range(5):
        page.keyboard.press("]")
    assert page.get_by_test_id("strength-value").text_content() == "Candidate B is much better."
    _mark(page, 2, capital, capital + 2, "1", note="京都 is wrong")
    _rationale(page, "東京です")
    expected.append(
        {
            "winner": shown[1],
            "tie": False,
            "strength": 3,
            "ratings": {},
            "spans": [(shown[1], capital, capital + 2, "incorrect", "京都 is wrong")],
            "rationale": "東京です",
            "shown_order": shown,
        }
    )
    _submit_and_wait(page, comparison)

    # Task 3: a tie, a span over a word with combining marks.
    page.get_by_test_id("task").wait_for()
    shown = shown_order(page)
    comparison = int(page.get_by_test_id("task").get_attribute("data-comparison"))
    text = _text(page, 1)
    word = re.search(r"r\S+sum\S+", text)
    page.keyboard.press("t")
    page.keyboard.press("]")  # a tie has no strength: nothing to raise
    assert page.get_by_test_id("strength-value").text_content() == "A tie has no strength."
    _mark(page, 1, word.start(), word.end(), "2")
    _rationale(page, "Same.")
    expected.append(
        {
            "winner": None,
            "tie": True,
            "strength": None,
            "ratings": {},
            "spans": [(shown[0], word.start(), word.end(), "irrelevant", "")],
            "rationale": "Same.",
            "shown_order": shown,
        }
    )
    _submit_and_wait(page, comparison)

    page.get_by_test_id("queue-empty").wait_for()
    assert page.get_by_test_id("today-count").text_content() == "Today: 3"
    shot(page, "workbench-queue-empty")
    assert page.errors == []

    judgments = Judgment.objects.filter(annotator=users["anna"]).order_by("pk").prefetch_related("spans")
    got = [
        {
            "winner": j.winner_id,
            "tie": j.tie,
            "strength": j.strength,
            "ratings": j.ratings,
            "spans": [(s.candidate_id, s.start, s.end, s.category, s.note) for s in j.spans.order_by("pk")],
            "rationale": j.rationale,
            "shown_order": j.shown_order,
        }
        for j in judgments
    ]
    assert got == expected
    assert [j.comparison_id for j in judgments] == [c.pk for c in comparisons]
    assert all(j.time_spent_ms and j.time_spent_ms > 0 for j in judgments)


def test_a_draft_survives_a_reload_and_a_failed_submission_is_retried_with_the_same_key(page, people):
    project, _ = people
    comparison = make_comparison(project, texts=["First answer.", "Second answer."], wanted=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    shown = shown_order(page)
    page.keyboard.press("2")
    _rationale(page, "Half-written")
    page.reload()
    page.get_by_test_id("task").wait_for()
    assert shown_order(page) == shown  # the same order, not a fresh shuffle
    assert page.get_by_label(re.compile("^Rationale")).input_value() == "Half-written"
    assert page.get_by_test_id("candidate-2").get_by_role("button").first.get_attribute("aria-pressed") == "true"

    keys = []

    def flaky(route, request):
        keys.append(request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.abort("connectionreset")  # the network drops the first try
        else:
            route.continue_()

    page.route("**/api/v1/comparisons/*/judgments/", flaky)
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    judgment = Judgment.objects.get(comparison=comparison)
    assert (judgment.winner_id, judgment.rationale, judgment.shown_order) == (shown[1], "Half-written", shown)
    # The draft went with the submission.
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tandem:draft:')).length") == 0


def test_the_lease_counts_down_and_a_lost_lease_is_explained(page, people):
    project, _ = people
    make_comparison(project, wanted=1)
    page.clock.install()
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    assert re.match(r"Lease: (10:00|9:5\d) left", page.get_by_test_id("lease").text_content())
    page.clock.fast_forward("10:05")
    page.get_by_text("Your lease on this task has run out").wait_for()
    shot(page, "workbench-lease-lost")


def test_help_overlay_lists_the_shortcuts_and_guidelines_open_from_the_keyboard(page, people):
    project, _ = people
    make_comparison(project, wanted=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    page.keyboard.press("?")
    help_box = page.get_by_role("dialog", name="Keyboard shortcuts")
    for keys in ("1 / 2", "T", "[ / ]", "Ctrl+Enter", "S", "?"):
        assert help_box.get_by_text(keys, exact=True).count() >= 1
    shot(page, "workbench-help")
    # Tab and Shift+Tab go round the dialog's controls; the page behind stays out of reach.
    in_dialog = "() => document.activeElement.closest('[role=dialog]')?.getAttribute('aria-label') ?? null"
    for key in ["Tab"] * 5 + ["Shift+Tab"] * 5:
        page.keyboard.press(key)
        assert page.evaluate(in_dialog) == "Keyboard shortcuts", key
    page.keyboard.press("Escape")
    assert help_box.count() == 0
    assert page.evaluate(in_dialog) is None
    page.keyboard.press("h")
    guidelines = page.get_by_role("dialog", name="Guidelines")
    assert guidelines.locator("strong").text_content() == "grounded"
    page.keyboard.press("Escape")
    page.keyboard.press("s")  # skip: asked first
    page.keyboard.press("s")
    page.get_by_test_id("queue-empty").wait_for()


def test_k_way_ranking_by_keys_then_reordered(page, people):
    project, users = people
    project.schema = {**project.schema, "arity": 3}
    project.save()
    make_comparison(project, arity=3, wanted=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    shown = shown_order(page)
    page.keyboard.press("2")
    page.keyboard.press("3")  # the last one ranks itself
    ranking = page.locator(".ranking li")
    assert ranking.all_text_contents()[0].startswith("Candidate B")
    assert ranking.all_text_contents()[2].startswith("Candidate A")
    page.get_by_role("button", name="Move candidate A up").click()
    shot(page, "workbench-ranking")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()
    judgment = Judgment.objects.get(annotator=users["anna"])
    assert judgment.ranking == [shown[1], shown[0], shown[2]]
    assert judgment.winner_id is None and not judgment.tie


@pytest.mark.parametrize("prefetched", [False, True], ids=["last-task", "next-task-prefetched"])
def test_a_lost_lease_is_explained_and_nothing_is_saved(page, people, prefetched):
    """Also when the next task was prefetched and the submission ran in the background."""
    project, users = people
    comparison = make_comparison(project, wanted=1, priority=1)
    following = make_comparison(project, wanted=1) if prefetched else None
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("task").wait_for()
    # The page asks for the task after this one as soon as this one shows (with nothing left, it is told so).
    # Wait for that answer: arriving after the expiry below, it would find Anna's lease expired and take the
    # task back for her before Bob can be served it.
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/next/?ahead=1'))"
    )
    # Anna's lease runs out while she thinks; Bob is served the task and answers it.
    Assignment.objects.filter(annotator=users["anna"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    bob = UserFactory(username="bob")
    MembershipFactory(project=project, user=bob, role=Role.ANNOTATOR)
    claim = queue.comparison_claim(project_id=project.pk, annotator_id=bob.pk)
    assert claim.comparison_id == comparison.pk
    judgment_submit(
        comparison_id=comparison.pk,
        annotator_id=bob.pk,
        answer=JudgmentInput(winner=comparison.candidate_ids[0]),
        idempotency_key="bob",
    )
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.get_by_text("no longer needed your judgment").wait_for()
    if prefetched:
        assert page.get_by_test_id("task").get_attribute("data-comparison") == str(following.pk)
    else:
        page.get_by_test_id("queue-empty").wait_for()
        shot(page, "workbench-lease-lost-409")
    assert not Judgment.objects.filter(annotator=users["anna"]).exists()


def _held_submissions(page) -> list:
    """Hold every judgment POST until the test lets it through (``route.continue_()``)."""
    held = []
    page.route("**/api/v1/comparisons/*/judgments/", lambda route, request: held.append(route))
    return held


def test_the_next_task_is_on_screen_before_the_submission_answers(page, people):
    """The next task is prefetched (a second lease), so it shows the moment the
    annotator submits; the submission is saved in the background."""
    project, _ = people
    first = make_comparison(project, texts=["Alpha answer.", "Beta answer."], priority=2, wanted=1)
    second = make_comparison(project, texts=["Gamma answer.", "Delta answer."], priority=1, wanted=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.locator(f"[data-testid=task][data-comparison='{first.pk}']").wait_for()
    # The prefetch has leased the second task while Anna reads the first.
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/next/?ahead=1'))"
    )
    held = _held_submissions(page)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    # On screen while the submission is still held (well under the 2 s it is held for below).
    page.locator(f"[data-testid=task][data-comparison='{second.pk}']").wait_for(timeout=1500)
    assert second.prompt.text in page.get_by_role("region", name="Prompt").text_content()
    assert page.get_by_test_id("saving").is_visible()
    assert len(held) == 1 and not Judgment.objects.exists()
    page.wait_for_timeout(2000)
    held.pop().continue_()
    page.get_by_test_id("saving").wait_for(state="detached")
    assert Judgment.objects.get().comparison_id == first.pk
    assert page.get_by_test_id("today-count").text_content() == "Today: 1"
    # The second task is answered as usual (nothing after it: saved, then "all done").
    page.unroute("**/api/v1/comparisons/*/judgments/")
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()
    assert sorted(Judgment.objects.values_list("comparison_id", flat=True)) == [first.pk, second.pk]


def test_a_background_submission_that_fails_brings_its_task_back_with_the_error(page, people):
    project, users = people
    first = make_comparison(project, texts=["Alpha answer.", "Beta answer."], priority=2, wanted=1)
    second = make_comparison(project, texts=["Gamma answer.", "Delta answer."], priority=1, wanted=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.locator(f"[data-testid=task][data-comparison='{first.pk}']").wait_for()
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/next/?ahead=1'))"
    )
    refusal = {"code": "invalid", "message": "Invalid input.", "errors": {"winner": ["Refused by the test."]}}
    page.route("**/api/v1/comparisons/*/judgments/", lambda route, request: route.fulfill(status=400, json=refusal))
    page.keyboard.press("2")
    _rationale(page, "Kept through the failure")
    page.keyboard.press("Control+Enter")
    # Back on the first task, its answer intact, with the reason shown in view.
    page.get_by_role("alert").filter(has_text="Refused by the test.").wait_for()
    page.wait_for_function(
        "() => { const r = document.querySelector('.answer [role=alert]').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    assert page.get_by_test_id("task").get_attribute("data-comparison") == str(first.pk)
    assert page.get_by_label(re.compile("^Rationale")).input_value() == "Kept through the failure"
    assert not Judgment.objects.exists()
    page.unroute("**/api/v1/comparisons/*/judgments/")
    page.keyboard.press("Control+Enter")
    page.locator(f"[data-testid=task][data-comparison='{second.pk}']").wait_for()
    page.get_by_test_id("saving").wait_for(state="detached")
    judgment = Judgment.objects.get()
    assert (judgment.comparison_id, judgment.rationale) == (first.pk, "Kept through the failure")
    # Two live leases at most: the prefetch came back as the next task, not as a third lease.
    assert Assignment.objects.filter(annotator=users["anna"], state="leased").count() == 1


# The demo's first question: its retrieved passages (a system turn) run to thousands of characters.
DEMO_ROW = json.loads((Path(settings.BASE_DIR) / "annotation/demo/fgrlhf_qa_bundle.jsonl").read_text().splitlines()[0])


def _in_view(page, locator) -> bool:
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= height


def _long_task(project, **kwargs):
    comparison = make_comparison(project, **kwargs)
    Prompt.objects.filter(pk=comparison.prompt_id).update(text=DEMO_ROW["text"], context=DEMO_ROW["context"])
    return comparison


def test_the_question_stays_in_view_above_long_context_which_folds_and_says_how_long_it_is(page, people):
    project, _ = people
    _long_task(project, wanted=1)
    passages = len(DEMO_ROW["context"][0]["content"])
    assert passages > 2000
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    question = page.get_by_test_id("question")
    question.wait_for()
    assert question.text_content() == DEMO_ROW["text"]
    assert _in_view(page, question)
    assert question.bounding_box()["y"] < page.get_by_test_id("candidate-1").bounding_box()["y"]
    context = page.get_by_test_id("context")
    assert context.get_attribute("open") is None  # folded
    assert f"1 earlier turn, {passages:,} characters" in context.locator("summary").text_content()
    assert _in_view(page, page.get_by_test_id("candidate-1"))
    shot(page, "workbench-long-context")
    # C opens it: a scrolling panel under the question, which stays in view.
    page.keyboard.press("c")
    assert context.get_attribute("open") is not None
    chat = context.locator(".chat")
    assert chat.evaluate("el => el.scrollHeight > el.clientHeight + 100")
    assert _in_view(page, question)
    shot(page, "workbench-long-context-open")


def test_each_new_task_opens_at_its_top_with_the_question_focused(page, people):
    project, _ = people
    long_answer = "A long answer. " * 400
    for priority in (3, 2, 1):
        _long_task(project, wanted=1, priority=priority, texts=[long_answer, "Short answer."])
    page.set_viewport_size({"width": 1200, "height": 700})
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.get_by_test_id("question").wait_for()
    for leave in ("submit", "skip"):
        first = page.get_by_test_id("task").get_attribute("data-comparison")
        page.keyboard.press("1")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        assert page.evaluate("window.scrollY") > 300
        assert not _in_view(page, page.get_by_test_id("question"))
        if leave == "submit":
            page.keyboard.press("Control+Enter")
        else:
            page.keyboard.press("s")
            page.keyboard.press("s")
        page.wait_for_function(
            "id => document.querySelector('[data-testid=task]')?.dataset.comparison !== id", arg=first
        )
        assert page.evaluate("window.scrollY") == 0
        assert _in_view(page, page.get_by_test_id("question"))
        assert page.evaluate("document.activeElement.dataset.testid") == "question"
    # From the focused question the keyboard flow goes on: 2 chooses, Ctrl+Enter submits.
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    page.get_by_test_id("queue-empty").wait_for()


def test_skip_asks_first_says_what_happened_and_no_shortcut_fires_while_text_is_selected(page, people):
    project, users = people
    first = make_comparison(project, wanted=1, priority=2)
    second = make_comparison(project, wanted=1, priority=1)
    sign_in(page, "anna")
    page.goto(f"/projects/{project.pk}/label")
    page.locator(f"[data-testid=task][data-comparison='{first.pk}']").wait_for()

    # Text selected (reading, copying): letters and digits do nothing.
    page.evaluate(
        """() => { const range = document.createRange();
        range.selectNodeContents(document.querySelector('[data-testid=question]'));
        getSelection().removeAllRanges(); getSelection().addRange(range); }"""
    )
    for key in ("s", "1", "t"):
        page.keyboard.press(key)
    assert page.get_by_test_id("skip-confirm").count() == 0
    assert page.get_by_test_id("candidate-1").get_by_role("button").first.get_attribute("aria-pressed") == "false"
    page.keyboard.press("Escape")  # clears the selection; the keys act again

    # S asks; Esc keeps the task.
    page.keyboard.press("s")
    confirm = page.get_by_role("alertdialog", name="Skip this task?")
    confirm.wait_for()
    shot(page, "workbench-skip-confirm")
    page.keyboard.press("1")  # no answering while asked
    assert page.get_by_test_id("candidate-1").get_by_role("button").first.get_attribute("aria-pressed") == "false"
    page.keyboard.press("Escape")
    assert confirm.count() == 0
    assert page.get_by_test_id("task").get_attribute("data-comparison") == str(first.pk)
    assert not Assignment.objects.filter(state="skipped").exists()

    # The button asks too; "Skip it" skips, and the next task says what happened.
    page.get_by_role("button", name="Skip S").click()
    confirm.get_by_role("button", name="Skip it").click()
    page.locator(f"[data-testid=task][data-comparison='{second.pk}']").wait_for()
    notice = page.get_by_role("status").filter(has_text="You skipped the last task")
    notice.wait_for()
    assert first.prompt.text in notice.text_content()
    assert Assignment.objects.get(annotator=users["anna"], comparison=first).state == "skipped"


def test_a_wrong_password_reads_plainly(page, people):
    page.goto("/")
    page.get_by_label("Username").fill("anna")
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").text_content() == "Wrong username or password."
