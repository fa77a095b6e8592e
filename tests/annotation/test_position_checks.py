"""Position-bias checks: a share of comparisons comes back later to the annotator who judged them, the candidates
swapped; the repeat answer is recorded on the check and counts toward nothing else."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from annotation import queue
from annotation.exporters import export_request_parse, export_to_folder
from annotation.models import (
    AnnotatorQuality,
    Comparison,
    Judgment,
    PositionCheck,
    PositionCheckState,
    Project,
)
from annotation.quality.flags import annotator_flags
from annotation.quality.position import check_draw
from annotation.quality.service import quality_recompute

from ..factories import MembershipFactory, UserFactory, make_comparison
from .export_read import read_rows

pytestmark = pytest.mark.django_db


class Labeller:
    """One annotator working through the API as the web app does: next, then a judgment naming what was shown."""

    def __init__(self, project, user):
        self.project, self.user = project, user
        self.client = APIClient()
        self.client.force_authenticate(user=user)
        self.keys = 0

    def next(self, ahead=False):
        response = self.client.get(f"/api/v1/projects/{self.project.pk}/next/", {"ahead": 1} if ahead else {})
        assert response.status_code in (200, 204), response.content
        return response.json() if response.status_code == 200 else None

    def answer(self, task, position=0, key=None, **body):
        shown = [c["id"] for c in task["candidates"]]
        if not body:
            body = {"winner": shown[position]}
        if key is None:
            self.keys += 1
            key = f"{self.user.pk}-{self.keys}"
        return self.client.post(
            f"/api/v1/comparisons/{task['comparison']}/judgments/",
            {**body, "shown_order": shown},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )

    def act(self, task, action):
        return self.client.post(f"/api/v1/comparisons/{task['comparison']}/{action}/")


def _checks_on(project, share=1.0, after=(2, 2), **fields):
    project.position_check_share = share
    project.position_check_after_min, project.position_check_after_max = after
    for name, value in fields.items():
        setattr(project, name, value)
    project.save()
    return project


def _labeller(project, name):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user)
    return Labeller(project, user)


def _ids(task):
    return [c["id"] for c in task["candidates"]]


def _judge(labeller, count, position=0):
    """Take and answer ``count`` ordinary tasks; returns them."""
    tasks = []
    for _ in range(count):
        task = labeller.next()
        assert task is not None
        assert labeller.answer(task, position).status_code == 201
        tasks.append(task)
    return tasks


def _first_check(labeller, after):
    """Judge one task, then as many as the check waits for; returns (first task, the check served)."""
    first, *_ = _judge(labeller, 1 + after)
    check = labeller.next()
    assert check["comparison"] == first["comparison"]
    return first, check


# --- Scheduling ------------------------------------------------------------------------------------------------


def test_the_draw_takes_the_configured_share_reproducibly_and_waits_within_the_window():
    project = Project(pk=7, position_check_share=0.25)
    draws = [check_draw(project=project, comparison_id=c, annotator_id=a) for c in range(400) for a in range(5)]
    drawn = [w for w in draws if w is not None]
    assert 0.22 < len(drawn) / len(draws) < 0.28
    assert set(drawn) == set(range(5, 21))  # the default window: 5..20 new tasks later
    assert draws == [check_draw(project=project, comparison_id=c, annotator_id=a) for c in range(400) for a in range(5)]
    project.position_check_share = 0.0
    assert {check_draw(project=project, comparison_id=c, annotator_id=1) for c in range(400)} == {None}


def test_a_submission_schedules_exactly_the_drawn_checks_and_none_for_gold(project, annotator):
    _checks_on(project, share=0.5, after=(50, 60), gold_share=1.0)
    gold = make_comparison(project, is_gold=True, wanted=100, gold_answer={"tie": True})
    ordinary = [make_comparison(project) for _ in range(20)]
    labeller = Labeller(project, annotator)
    served = [task["comparison"] for task in _judge(labeller, 21)]
    assert sorted(served) == sorted([gold.pk] + [c.pk for c in ordinary])

    expected = {
        c.pk: check_draw(project=project, comparison_id=c.pk, annotator_id=annotator.pk)
        for c in ordinary
        if check_draw(project=project, comparison_id=c.pk, annotator_id=annotator.pk) is not None
    }
    checks = {c.comparison_id: c for c in PositionCheck.objects.all()}
    assert 0 < len(checks) < 20 and set(checks) == set(expected)
    for comparison_id, check in checks.items():
        assert check.annotator_id == annotator.pk and check.state == PositionCheckState.WAITING
        assert check.judgment == Judgment.objects.get(comparison_id=comparison_id, annotator=annotator)
        # Each new task after it (here all of them) brought it one nearer.
        later = served[served.index(comparison_id) + 1 :]
        assert check.wait == expected[comparison_id] - len(later)


# --- Serving -----------------------------------------------------------------------------------------------------


def test_the_check_comes_after_the_set_number_of_tasks_swapped_to_its_annotator_only(project):
    _checks_on(project, after=(2, 2))
    for _ in range(8):
        make_comparison(project)
    anna, bob = _labeller(project, "anna"), _labeller(project, "bob")
    annas = _judge(anna, 3)
    first = annas[0]

    check = anna.next()
    assert check["comparison"] == first["comparison"] and not check["resumed"]
    assert _ids(check) == _ids(first)[::-1]
    assert set(check) == set(first) and check["prompt"] == first["prompt"]
    assert [c["text"] for c in check["candidates"]] == [c["text"] for c in first["candidates"]][::-1]
    again = anna.next()  # a reload shows it again
    assert again["comparison"] == first["comparison"] and again["resumed"] and _ids(again) == _ids(check)

    # Bob works through everything left to him (his own checks included): never anna's comparisons.
    seen_by_bob = []
    while (task := bob.next()) is not None:
        seen_by_bob.append(task["comparison"])
        assert bob.answer(task).status_code == 201
    assert seen_by_bob and not {t["comparison"] for t in annas} & set(seen_by_bob)
    refused = bob.answer(check, 0)
    assert refused.status_code == 409 and refused.json()["code"] == "no_live_lease"
    assert not PositionCheck.objects.filter(annotator=bob.user, comparison_id__in=[t["comparison"] for t in annas])


def test_a_served_check_is_the_current_task_and_ahead_is_the_task_after_it(project):
    _checks_on(project, after=(1, 1))
    for _ in range(6):
        make_comparison(project)
    anna = _labeller(project, "anna")
    first = anna.next()
    following = anna.next(ahead=True)
    assert anna.answer(first).status_code == 201  # its check waits for one new task
    assert anna.next()["comparison"] == following["comparison"]  # a reload: no new task
    third = anna.next(ahead=True)  # the new task: the check is due from here
    assert third["comparison"] not in (first["comparison"], following["comparison"])
    assert anna.answer(following).status_code == 201
    assert anna.next()["comparison"] == third["comparison"]  # the task on screen stays first
    check = anna.next(ahead=True)  # fetched ahead while `third` is on screen
    assert check["comparison"] == first["comparison"] and _ids(check) == _ids(first)[::-1]
    assert anna.answer(third).status_code == 201
    assert anna.next()["comparison"] == first["comparison"]
    after = anna.next(ahead=True)  # the ordinary task after the check
    assert after["comparison"] not in (first["comparison"], following["comparison"], third["comparison"])
    assert anna.answer(check).status_code == 201
    assert anna.next()["comparison"] == after["comparison"]


def test_ranking_checks_come_in_reversed_order(project):
    project.schema = {**project.schema, "arity": 3}
    _checks_on(project, after=(1, 1))
    for _ in range(3):
        make_comparison(project, arity=3)
    anna = _labeller(project, "anna")
    first, check = _first_check(anna, after=1)
    assert len(_ids(first)) == 3 and _ids(check) == _ids(first)[::-1]


# --- Answering -------------------------------------------------------------------------------------------------


def test_answering_a_check_writes_no_judgment_and_changes_no_count_nor_export(project, tmp_path):
    _checks_on(project, after=(1, 1))
    for _ in range(4):
        make_comparison(project)
    anna = _labeller(project, "anna")
    first, check = _first_check(anna, after=1)
    ordinary = anna.answer(first, key=f"{anna.user.pk}-1")  # a retry of the first judgment: its shape
    request = export_request_parse(shape="judgments", file_format="jsonl")
    export_to_folder(project, request, tmp_path / "before")
    counters = list(Comparison.objects.order_by("pk").values_list("wanted", "judged", "leased", "status"))
    judgments = Judgment.objects.count()

    response = anna.answer(check, position=1, key="repeat")  # the same candidate, now on the right
    assert response.status_code == 201
    body = response.json()
    assert ordinary.status_code == 200 and set(body) == set(ordinary.json()) and "consistent" not in body
    assert body["winner"] == _ids(first)[0] and body["shown_order"] == _ids(check)

    assert Judgment.objects.count() == judgments
    assert list(Comparison.objects.order_by("pk").values_list("wanted", "judged", "leased", "status")) == counters
    export_to_folder(project, request, tmp_path / "after")
    assert read_rows(tmp_path / "after", "jsonl") == read_rows(tmp_path / "before", "jsonl")
    stored = PositionCheck.objects.get(comparison_id=first["comparison"])
    assert (stored.state, stored.consistent, stored.answer["winner"]) == ("answered", True, _ids(first)[0])

    retry = anna.answer(check, position=1, key="repeat")
    assert (retry.status_code, retry.json()) == (200, body)
    changed = anna.answer(check, position=0, key="repeat")
    assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"
    again = anna.answer(check, position=1, key="another")
    assert again.status_code == 409 and again.json()["code"] == "not_needed"
    assert Judgment.objects.count() == judgments


@pytest.mark.parametrize(
    ("first", "repeat", "consistent"),
    [
        ({"position": 0}, {"position": 1}, True),  # the same answer, now on the other side
        ({"position": 0}, {"position": 0}, False),  # the same side: a different answer
        ({"tie": True}, {"tie": True}, True),
        ({"tie": True}, {"position": 0}, False),
        ({"position": 1}, {"tie": True}, False),
    ],
)
def test_pairwise_consistency_is_the_same_winner_or_a_tie_again(project, first, repeat, consistent):
    _checks_on(project, after=(1, 1))
    for _ in range(3):
        make_comparison(project)
    anna = _labeller(project, "anna")
    task = anna.next()
    assert anna.answer(task, **_body(task, first)).status_code == 201
    _judge(anna, 1)
    check = anna.next()
    assert check["comparison"] == task["comparison"]
    assert anna.answer(check, **_body(check, repeat)).status_code == 201
    assert PositionCheck.objects.get(comparison_id=task["comparison"]).consistent is consistent


def _body(task, spec):
    return {"tie": True} if spec.get("tie") else {"position": spec["position"]}


@pytest.mark.parametrize(("top_same", "consistent"), [(True, True), (False, False)])
def test_ranking_consistency_is_the_same_top_choice(project, top_same, consistent):
    project.schema = {**project.schema, "arity": 3}
    _checks_on(project, after=(1, 1))
    for _ in range(3):
        make_comparison(project, arity=3)
    anna = _labeller(project, "anna")
    task = anna.next()
    a, b, c = _ids(task)
    assert anna.answer(task, ranking=[a, b, c]).status_code == 201
    other = anna.next()
    assert anna.answer(other, ranking=_ids(other)).status_code == 201
    check = anna.next()
    assert _ids(check) == [c, b, a]
    ranking = [a, c, b] if top_same else [b, a, c]  # the rest of the ranking may change
    assert anna.answer(check, ranking=ranking).status_code == 201
    assert PositionCheck.objects.get(comparison_id=task["comparison"]).consistent is consistent


# --- Skip, release, run-out --------------------------------------------------------------------------------------


def test_a_skipped_check_is_never_served_again_and_skipping_twice_is_a_no_op(project):
    _checks_on(project, after=(1, 1))
    for _ in range(3):
        make_comparison(project)
    anna = _labeller(project, "anna")
    first, check = _first_check(anna, after=1)
    assert anna.act(check, "skip").status_code == 204
    assert anna.act(check, "skip").status_code == 204
    assert PositionCheck.objects.get(comparison_id=first["comparison"]).state == PositionCheckState.SKIPPED
    served = []
    while (task := anna.next()) is not None:
        served.append(task["comparison"])
        assert anna.answer(task).status_code == 201
    assert first["comparison"] not in served
    assert Judgment.objects.filter(comparison_id=first["comparison"]).count() == 1


def test_a_released_check_comes_back_once_then_is_dropped(project):
    _checks_on(project, share=1.0, after=(1, 1))
    for _ in range(8):
        make_comparison(project)
    anna = _labeller(project, "anna")
    first, check = _first_check(anna, after=1)
    assert anna.act(check, "release").status_code == 204
    stored = PositionCheck.objects.get(comparison_id=first["comparison"])
    assert (stored.state, stored.wait, stored.given_back) == ("waiting", 1, 1)

    # The next new task is ordinary; then, one task later, the check once more, swapped as before.
    task = anna.next()
    assert task["comparison"] != first["comparison"]
    assert anna.answer(task).status_code == 201
    again = anna.next()
    assert again["comparison"] == first["comparison"] and _ids(again) == _ids(check)
    assert anna.act(again, "release").status_code == 204
    assert PositionCheck.objects.get(pk=stored.pk).state == PositionCheckState.DROPPED
    served = []
    while (task := anna.next()) is not None:
        served.append(task["comparison"])
        assert anna.answer(task).status_code == 201
    assert first["comparison"] not in served


def test_a_check_whose_lease_ran_out_is_rescheduled_and_the_queue_goes_on(project, annotator):
    _checks_on(project, after=(1, 1))
    for _ in range(4):
        make_comparison(project)
    first, _ = _first_check(Labeller(project, annotator), after=1)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    claim = queue.comparison_claim(project_id=project.pk, annotator_id=annotator.pk, now=later)
    assert claim is not None and claim.comparison_id != first["comparison"]
    stored = PositionCheck.objects.get(comparison_id=first["comparison"])
    assert (stored.state, stored.given_back) == ("waiting", 1)


# --- Cost on the hot path ----------------------------------------------------------------------------------------

# The statements next and submit issue with position checks off (tests/annotation/test_hot_path.py says why these
# numbers); in a test both run inside a transaction, so each atomic block adds a SAVEPOINT and its RELEASE.
CHECKS_OFF = {
    "sqlite": {"next": 7, "resumed": 5, "ahead": 7, "submit": 6},
    "postgresql": {"next": 3, "resumed": 3, "ahead": 3, "submit": 3},
}


def _count(call):
    with CaptureQueriesContext(connection) as queries:
        result = call()
    return result, [q["sql"] for q in queries]


def _cycle(labeller):
    """One label as the web app makes it, from nothing held: the task, a reload, the task fetched ahead, the
    answer (and the ahead task's, so the next cycle starts from nothing held again)."""
    task, nxt = _count(labeller.next)
    _, resumed = _count(labeller.next)
    ahead_task, ahead = _count(lambda: labeller.next(ahead=True))
    response, submit = _count(lambda: labeller.answer(task))
    assert response.status_code == 201 and labeller.answer(ahead_task).status_code == 201
    return {"next": nxt, "resumed": resumed, "ahead": ahead, "submit": submit}


def test_with_checks_off_next_and_submit_issue_no_statement_for_them(project):
    for _ in range(12):
        make_comparison(project)
    anna = _labeller(project, "anna")
    _cycle(anna)  # the first submission of a process reads the project's rules (annotation.judgments)
    off = _cycle(anna)
    if connection.vendor in CHECKS_OFF:
        assert {k: len(v) for k, v in off.items()} == CHECKS_OFF[connection.vendor]
    # The only mention of the checks is in the claim's read of the project, whose subquery does not run at share 0.
    mentions = {k: [s for s in calls if "positioncheck" in s] for k, calls in off.items()}
    assert {k: len(v) for k, v in mentions.items()} == {"next": 1, "resumed": 1, "ahead": 1, "submit": 0}
    assert all("THEN (SELECT MIN(CASE" in s for calls in mentions.values() for s in calls)
    counts = {k: len(v) for k, v in off.items()}

    _checks_on(project, after=(50, 50))
    drawn = {k: len(v) for k, v in _cycle(anna).items()}  # nothing open until its answer draws a check
    assert drawn == {**counts, "submit": counts["submit"] + 1}
    waiting = {k: len(v) for k, v in _cycle(anna).items()}  # each new task advances the waiting checks
    assert waiting == {
        **counts,
        "next": counts["next"] + 1,
        "ahead": counts["ahead"] + 1,
        "submit": counts["submit"] + 1,
    }


# --- Quality figures and who sees them ---------------------------------------------------------------------------


def _answer_checks(project, labeller, rounds, same):
    """Judge, and answer each check as it comes: the same answer (``same``) or the same side."""
    for _ in range(rounds):
        task = labeller.next()
        if task is None:
            return
        check = PositionCheck.objects.filter(
            comparison_id=task["comparison"], annotator=labeller.user, state="served"
        ).first()
        if check is None:
            assert labeller.answer(task, 0).status_code == 201
        else:
            first = check.judgment.winner_id
            position = _ids(task).index(first) if same else 1 - _ids(task).index(first)
            assert labeller.answer(task, position).status_code == 201


def test_consistency_per_annotator_with_its_interval_and_the_inconsistent_flag(project, researcher):
    _checks_on(project, after=(1, 1))
    for _ in range(30):
        make_comparison(project)
    careful, clicker = _labeller(project, "careful"), _labeller(project, "clicker")
    _answer_checks(project, careful, 30, same=True)
    _answer_checks(project, clicker, 30, same=False)
    quality_recompute(project_id=project.pk)

    stored = {q.annotator.username: q for q in AnnotatorQuality.objects.filter(project=project)}
    assert (
        stored["careful"].position_checks >= 10
        and stored["careful"].position_consistent == stored["careful"].position_checks
    )
    assert stored["clicker"].position_checks >= 10 and stored["clicker"].position_consistent == 0

    rows = _quality_rows(project, researcher)
    assert rows["careful"]["position_consistency"] == 1.0 and rows["careful"]["position_consistency_low"] > 0.6
    assert rows["clicker"]["position_consistency"] == 0.0 and rows["clicker"]["position_consistency_high"] < 0.4
    assert "inconsistent" in {f["code"] for f in rows["clicker"]["flags"]}
    assert "inconsistent" not in {f["code"] for f in rows["careful"]["flags"]}


def _quality_rows(project, user):
    client = APIClient()
    client.force_authenticate(user=user)
    response = client.get(f"/api/v1/projects/{project.pk}/quality/")
    assert response.status_code == 200
    return {r["username"]: r for r in response.json()["annotators"]}


def test_the_inconsistent_flag_needs_enough_checks_and_a_clearly_low_interval():
    def flags(checks, same):
        figures = {"position_checks": checks, "position_consistent": same}
        return {f["code"] for f in annotator_flags(figures, project_median_ms=None)}

    assert "inconsistent" in flags(10, 1)
    assert "inconsistent" not in flags(9, 0)  # too few checks
    assert "inconsistent" not in flags(20, 10)  # a coin: its interval reaches past 60 %
    assert "inconsistent" not in flags(20, 18)


def test_annotators_see_no_consistency_of_their_own_or_of_others(project, annotator):
    _checks_on(project, after=(1, 1))
    for _ in range(4):
        make_comparison(project)
    anna = Labeller(project, annotator)
    first, check = _first_check(anna, after=1)
    submitted = anna.answer(check, 1).json()
    quality_recompute(project_id=project.pk)
    assert AnnotatorQuality.objects.get(annotator=annotator).position_checks == 1

    assert anna.client.get(f"/api/v1/projects/{project.pk}/quality/").status_code == 403
    readable = [
        submitted,
        anna.client.get("/api/v1/me/work/").json(),
        anna.client.get(f"/api/v1/projects/{project.pk}/judgments/").json(),
    ]
    assert not any(word in str(readable) for word in ("consisten", "position"))
    # The check counts as a task done today, as the web app counted it when it was saved.
    assert readable[1][0]["done_today"] == 3 and Judgment.objects.filter(annotator=annotator).count() == 2
    # The project's settings say checks are on (as they say the gold share), nothing about anyone's answers.
    settings = anna.client.get(f"/api/v1/projects/{project.pk}/").json()
    assert "consisten" not in str(settings) and settings["position_check_share"] == 1.0
    mine = anna.client.get(f"/api/v1/projects/{project.pk}/judgments/", {"comparison": first["comparison"]}).json()
    assert len(mine["results"]) == 1  # the first judgment only: the repeat is no judgment


# --- Settings ----------------------------------------------------------------------------------------------------


def test_the_settings_are_validated_naming_the_field(api, admin, project):
    client = api.as_user(admin)
    url = f"/api/v1/projects/{project.pk}/"
    bad = client.patch(url, {"position_check_share": 1.5}, format="json")
    assert bad.status_code == 400 and "position_check_share" in bad.json()["errors"]
    window = client.patch(url, {"position_check_after_min": 9, "position_check_after_max": 3}, format="json")
    assert window.status_code == 400 and "position_check_after_max" in window.json()["errors"]
    low = client.patch(url, {"position_check_after_min": 30}, format="json")  # above the stored max of 20
    assert low.status_code == 400 and "position_check_after_min" in low.json()["errors"]
    ok = client.patch(
        url, {"position_check_share": 0.1, "position_check_after_min": 3, "position_check_after_max": 8}, format="json"
    )
    assert ok.status_code == 200
    assert (ok.json()["position_check_share"], ok.json()["position_check_after_max"]) == (0.1, 8)
    project.refresh_from_db()
    assert (project.position_check_share, project.position_check_after_min) == (0.1, 3)


def test_ordinary_tasks_come_shuffled_per_annotator_and_the_same_on_a_reload(project):
    comparisons = [make_comparison(project, wanted=2) for _ in range(24)]
    shown = {}
    for labeller in (_labeller(project, "anna"), _labeller(project, "bob")):
        for _ in comparisons:
            task = labeller.next()
            assert _ids(labeller.next()) == _ids(task)  # a reload: the same order
            shown[labeller.user.username, task["comparison"]] = _ids(task)
            assert labeller.answer(task).status_code == 201
    for comparison in comparisons:
        assert sorted(shown["anna", comparison.pk]) == sorted(comparison.candidate_ids)
    # The stored order does not decide what is shown, and two annotators' orders are drawn apart.
    assert 4 <= sum(shown["anna", c.pk] != c.candidate_ids for c in comparisons) <= 20
    assert 4 <= sum(shown["anna", c.pk] != shown["bob", c.pk] for c in comparisons) <= 20
