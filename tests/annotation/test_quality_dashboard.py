"""The quality dashboard's API (issue 18): promoting unanimous comparisons to gold and demoting them, the gold
settings form's errors, agreement over time and the annotator × annotator kappa, each for researchers only."""

import pytest
from django.contrib.admin.models import LogEntry

from annotation.comparisons import GOLD_WANTED
from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Comparison, ComparisonStatus, Judgment, Membership, Role
from annotation.quality.service import quality_recompute
from annotation.queue import comparison_claim
from training.judgments_source import judgment_records

from ..factories import ProjectFactory, UserFactory, make_comparison
from .export_world import judge

pytestmark = pytest.mark.django_db


def _label(project, user, plan: dict) -> list[int]:
    """Let ``user`` work through the real queue, answering each comparison as ``plan`` says (default: the first
    stored candidate wins); returns the comparisons answered."""
    answered = []
    while (claim := comparison_claim(project_id=project.pk, annotator_id=user.pk)) is not None:
        comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
        how = plan.get(comparison.pk, {"winner": 0})
        answer = JudgmentInput(
            winner=comparison.candidate_ids[how["winner"]] if "winner" in how else None,
            tie=how.get("tie", False),
            shown_order=list(comparison.candidate_ids),
        )
        judgment_submit(
            comparison_id=comparison.pk, annotator_id=user.pk, answer=answer, idempotency_key=f"k{comparison.pk}"
        )
        answered.append(comparison.pk)
    return answered


@pytest.fixture
def gold_world(researcher):
    """anna, bob and cara judge four comparisons through the queue: one all for the first answer, one all ties, one
    2 to 1, one (wanting two judgments) twice; dan has not started. There is also an imported gold check."""
    project = ProjectFactory(overlap=3)
    people = [UserFactory(username=name) for name in ("anna", "bob", "cara", "dan")]
    for user in people:
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    project.memberships.create(user=researcher, role=Role.RESEARCHER)
    unanimous = make_comparison(project, priority=9)
    ties = make_comparison(project, priority=8)
    split = make_comparison(project, priority=7)
    two = make_comparison(project, priority=6, wanted=2)
    imported = make_comparison(project, is_gold=True, gold_answer={"tie": True})
    anna, bob, cara, _ = people
    for user in (anna, bob, cara):
        plan = {ties.pk: {"tie": True}, split.pk: {"winner": 1 if user == cara else 0}}
        _label(project, user, plan)
    assert Comparison.objects.get(pk=unanimous.pk).status == ComparisonStatus.DONE
    assert Comparison.objects.get(pk=two.pk).judged == 2
    return project, people, unanimous, ties, split, two, imported


def _gold_url(project, comparison_id=None):
    return f"/api/v1/projects/{project.pk}/quality/gold/" + (f"{comparison_id}/" if comparison_id else "")


def test_unanimous_comparisons_with_enough_judgments_are_listed_as_ready_to_become_gold(api, gold_world, researcher):
    project, _, unanimous, ties, *_ = gold_world
    body = api.as_user(researcher).get(_gold_url(project)).json()
    assert body["min_judgments"] == 3 and body["promoted"] == []
    ready = {item["comparison_id"]: item for item in body["ready"]}
    assert set(ready) == {unanimous.pk, ties.pk}  # not the split one, the one judged twice, nor the imported gold
    assert ready[unanimous.pk]["answer"] == {"winner": unanimous.candidate_ids[0]}
    assert ready[unanimous.pk]["answer_text"].startswith("Answer 0 to ")
    assert ready[ties.pk]["answer"] == {"tie": True} and ready[ties.pk]["judgments"] == 3

    project.gold_settings = {"promote_min_judgments": 2}
    project.save(update_fields=["gold_settings"])
    body = api.as_user(researcher).get(_gold_url(project)).json()
    assert body["min_judgments"] == 2 and len(body["ready"]) == 3  # now the one judged twice, unanimously, too


def test_promoting_and_demoting_is_a_reversible_round_trip_in_the_audit_log(api, gold_world, researcher):
    project, (anna, _, _, dan), unanimous, *_, imported = gold_world
    before = list(Judgment.objects.filter(comparison=unanimous).values_list("pk", flat=True))
    client = api.as_user(researcher)

    promoted = client.post(_gold_url(project, unanimous.pk))
    assert promoted.status_code == 200, promoted.json()
    assert unanimous.pk not in {item["comparison_id"] for item in promoted.json()["ready"]}
    [item] = promoted.json()["promoted"]
    assert (item["comparison_id"], item["promoted_by"], item["judgments_before"]) == (unanimous.pk, "rita", 3)
    stored = Comparison.objects.get(pk=unanimous.pk)
    assert stored.is_gold and stored.gold_answer == {"winner": unanimous.candidate_ids[0]}
    assert (stored.wanted, stored.status) == (GOLD_WANTED, ComparisonStatus.OPEN)

    # Served to dan as a gold check (gold share 1, while he has regular work left); nobody who judged it sees it again.
    project.gold_share = 1.0
    project.save(update_fields=["gold_share"])
    make_comparison(project, priority=-1, wanted=10)
    assert comparison_claim(project_id=project.pk, annotator_id=anna.pk).comparison_id != unanimous.pk
    assert _label(project, dan, {unanimous.pk: {"winner": 1}, imported.pk: {"tie": True}})[0] == unanimous.pk

    # The judgments from before stay ordinary training labels; dan's answer is a gold check (and a wrong one).
    records = {r.judgment_id: r.is_gold for r in judgment_records(project_id=project.pk, max_judgment_id=10**9)}
    dans = Judgment.objects.get(comparison=unanimous, annotator=dan).pk
    assert [records[pk] for pk in before] == [False, False, False] and records[dans] is True
    quality_recompute(project_id=project.pk)
    table = {r["username"]: r for r in client.get(f"/api/v1/projects/{project.pk}/quality/").json()["annotators"]}
    # Right on the imported check, wrong on the promoted one.
    assert (table["dan"]["gold_judged"], table["dan"]["gold_accuracy"]) == (2, 0.5)
    assert table["anna"]["gold_judged"] == 0  # her earlier answer defined the gold answer: not graded against it

    demoted = client.delete(_gold_url(project, unanimous.pk))
    assert demoted.status_code == 200 and demoted.json()["promoted"] == []
    stored = Comparison.objects.get(pk=unanimous.pk)
    assert (stored.is_gold, stored.gold_answer, "gold_promotion" in stored.origin) == (False, None, False)
    # Four judgments now, so it wants four (it wanted three) and is done; dan's becomes an ordinary label.
    assert (stored.wanted, stored.judged, stored.status) == (4, 4, ComparisonStatus.DONE)
    assert not any(
        r.is_gold
        for r in judgment_records(project_id=project.pk, max_judgment_id=10**9)
        if r.comparison_id == unanimous.pk
    )

    messages = list(
        LogEntry.objects.filter(user=researcher, object_id=str(project.pk))
        .order_by("pk")
        .values_list("change_message", flat=True)
    )
    assert messages[0].startswith(f"Promoted comparison {unanimous.pk} ({unanimous.external_id}) to gold: 3 judgments")
    assert messages[1] == f"Demoted comparison {unanimous.pk} ({unanimous.external_id}) from gold"


def test_promotion_is_refused_with_the_reason(api, gold_world, researcher):
    project, _, unanimous, _, split, two, imported = gold_world
    client = api.as_user(researcher)

    def refusal(method, comparison):
        response = getattr(client, method)(_gold_url(project, comparison.pk))
        assert response.status_code == 400
        return response.json()["errors"]["comparison_id"][0]

    assert "disagree (2 for candidate" in refusal("post", split) and "1 for candidate" in refusal("post", split)
    assert "has 2 judgments; promoting it to gold needs at least 3" in refusal("post", two)
    assert "is already a gold check" in refusal("post", imported)
    assert "was imported as gold, not promoted" in refusal("delete", imported)
    assert "is not a gold check" in refusal("delete", unanimous)
    assert not Comparison.objects.get(pk=split.pk).is_gold and not LogEntry.objects.exists()

    elsewhere = make_comparison(ProjectFactory())
    missing = client.post(_gold_url(project, elsewhere.pk))
    assert missing.status_code == 404 and "No comparison" in missing.json()["message"]


def test_annotators_and_outsiders_can_neither_list_nor_promote_gold(api, gold_world, outsider):
    project, (anna, *_), unanimous, *_ = gold_world
    for user, code in ((anna, 403), (outsider, 404)):
        client = api.as_user(user)
        assert client.get(_gold_url(project)).status_code == code
        assert client.post(_gold_url(project, unanimous.pk)).status_code == code
        assert client.delete(_gold_url(project, unanimous.pk)).status_code == code
        assert client.get(f"/api/v1/projects/{project.pk}/quality/agreement/").status_code == code
    assert not Comparison.objects.get(pk=unanimous.pk).is_gold


def test_a_bad_gold_setting_is_named_on_its_own_field(api, gold_world, admin):
    project = gold_world[0]
    project.memberships.create(user=admin, role=Role.ADMIN)
    bad = api.as_user(admin).patch(
        f"/api/v1/projects/{project.pk}/",
        {"gold_share": 1.5, "gold_settings": {"warn_below": 2, "promote_min_judgments": 1}},
        format="json",
    )
    assert bad.status_code == 400
    errors = bad.json()["errors"]
    assert set(errors) == {"gold_share", "gold_settings.warn_below", "gold_settings.promote_min_judgments"}
    assert errors["gold_settings.promote_min_judgments"] == ["Must be a whole number of judgments, at least 2."]
    not_an_object = api.as_user(admin).patch(f"/api/v1/projects/{project.pk}/", {"gold_settings": [1]}, format="json")
    assert not_an_object.json()["errors"] == {"gold_settings": ["Must be an object."]}


@pytest.fixture
def agreement_world(researcher):
    """Week of 2 March: ann and ben judge five comparisons and agree on four (both pick the first candidate on two,
    the second on two). Week of 16 March: ann and cat judge two (agreeing), ben one alone. Nothing the week
    between."""
    project = ProjectFactory()
    ann, ben, cat = (UserFactory(username=name) for name in ("ann", "ben", "cat"))
    for user in (ann, ben, cat):
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    project.memberships.create(user=researcher, role=Role.RESEARCHER)
    for i in range(5):
        comparison = make_comparison(project)
        first = 0 if i < 2 else 1
        judge(comparison, ann, winner=first, day=1)  # 2026-03-02, a Monday
        judge(comparison, ben, winner=first if i < 4 else 0, day=3)
    for _ in range(2):
        comparison = make_comparison(project)
        judge(comparison, ann, winner=1, day=15)
        judge(comparison, cat, winner=1, day=16)
    judge(make_comparison(project), ben, winner=0, day=17)
    quality_recompute(project_id=project.pk)
    return project, ann, ben, cat


def test_agreement_over_time_and_between_annotators_match_a_hand_computed_example(api, agreement_world, researcher):
    project, ann, ben, cat = agreement_world
    body = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/quality/agreement/").json()
    assert (body["min_shared"], body["min_week_comparisons"]) == (5, 5)
    # Week 1, by hand: values are the chosen candidate's position, first (0) or second (1): units (0,0) (0,0) (1,1)
    # (1,1) (1,0), and each again with positions reversed, so n_0 = n_1 = 10 of n = 20; D_o = 4/20,
    # D_e = (20² − 10² − 10²) / (20·19) = 200/380, alpha = 1 − 0.2 / (200/380) = 0.62.
    assert body["over_time"] == [
        {"week": "2026-03-02", "judgments": 10, "comparisons": 5, "pairable_comparisons": 5,
         "krippendorff_alpha": 0.62},
        {"week": "2026-03-09", "judgments": 0, "comparisons": 0, "pairable_comparisons": 0,
         "krippendorff_alpha": None},
        {"week": "2026-03-16", "judgments": 5, "comparisons": 3, "pairable_comparisons": 2,
         "krippendorff_alpha": None},  # two comparisons judged twice: too few, a gap
    ]  # fmt: skip
    assert [a["username"] for a in body["annotators"]] == ["ann", "ben", "cat"]
    pairs = {frozenset((p["first"], p["second"])): p for p in body["pairs"]}
    # ann × ben, by hand: observed 4/5; over both orders each picks first and second 5 times of 10: chance 1/2;
    # kappa = (0.8 − 0.5) / 0.5.
    ann_ben = pairs[frozenset((ann.pk, ben.pk))]
    assert (ann_ben["kappa"], ann_ben["shared"], ann_ben["agreement"]) == (0.6, 5, 0.8)
    ann_cat = pairs[frozenset((ann.pk, cat.pk))]
    assert (ann_cat["kappa"], ann_cat["shared"]) == (None, 2)  # too few shared: a blank cell
    assert frozenset((ben.pk, cat.pk)) not in pairs
    # The table the dashboard polls leaves these lists to this endpoint.
    table = api.as_user(researcher).get(f"/api/v1/projects/{project.pk}/quality/").json()
    assert "over_time" not in table["statistics"] and "cohen_kappa_pairs" not in table["statistics"]
