"""Submitting judgments over the API: validation against the schema, idempotency, conflicts."""

import pytest

from annotation.models import Candidate, Comparison, Judgment, SpanMark

from ..factories import UserFactory, make_comparison

pytestmark = pytest.mark.django_db


def post(api, comparison, body, key="key-1"):
    return api.post(f"/api/v1/comparisons/{comparison.pk}/judgments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def comparison(project):
    return make_comparison(project, texts=["Paris is in France 🇫🇷.", "Paris is in Texas, e\u0301videmment."])


@pytest.fixture
def client(api, annotator, project, comparison):
    client = api.as_user(annotator)
    assert client.get(f"/api/v1/projects/{project.pk}/next/").status_code == 200
    return client


def test_a_full_judgment_is_stored_exactly_as_sent(client, comparison, annotator):
    left, right = comparison.candidate_ids
    body = {
        "winner": left,
        "strength": 2,
        "ratings": {str(left): {"helpful": 5}, str(right): {"helpful": 2}},
        # "Texas" in the second text, counted in code points (the accent is a combining mark).
        "spans": [{"candidate": right, "start": 12, "end": 17, "category": "incorrect", "note": "wrong state"}],
        "rationale": "The right answer is wrong about the country.",
        "shown_order": [right, left],
        "time_spent_ms": 5300,
    }
    response = post(client, comparison, body)
    assert response.status_code == 201, response.json()
    judgment = Judgment.objects.get()
    assert (judgment.annotator, judgment.winner_id, judgment.strength) == (annotator, left, 2)
    assert judgment.ratings == {str(left): {"helpful": 5}, str(right): {"helpful": 2}}
    assert judgment.shown_order == [right, left]
    span = SpanMark.objects.get()
    assert Candidate.objects.get(pk=right).text[int(span.start) : int(span.end)] == "Texas"
    assert response.json()["spans"][0]["category"] == "incorrect"


def test_spans_after_an_emoji_use_code_point_offsets(client, comparison):
    left = comparison.candidate_ids[0]
    text = Candidate.objects.get(pk=left).text
    start = text.index("🇫🇷")
    body = {"winner": left, "spans": [{"candidate": left, "start": start, "end": len(text), "category": "irrelevant"}]}
    assert post(client, comparison, body).status_code == 201
    too_far = {
        "winner": left,
        "spans": [{"candidate": left, "start": 0, "end": len(text) + 1, "category": "irrelevant"}],
    }
    response = post(client, comparison, too_far, key="key-2")
    assert response.status_code == 400
    assert "spans[0]" in response.json()["errors"]


def test_a_retry_with_the_same_key_returns_the_first_judgment(client, comparison):
    body = {"winner": comparison.candidate_ids[0]}
    first = post(client, comparison, body)
    again = post(client, comparison, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Judgment.objects.count() == 1
    assert Comparison.objects.get(pk=comparison.pk).judged == 1


def test_a_retry_of_a_full_judgment_with_the_same_key_is_answered_with_it(client, comparison):
    left, right = comparison.candidate_ids
    body = {
        "winner": left,
        "strength": 2,
        "ratings": {str(left): {"helpful": 5}},
        "spans": [{"candidate": right, "start": 12, "end": 17, "category": "incorrect", "note": "wrong state"}],
        "rationale": "Texas.",
        "time_spent_ms": 5300,
    }
    assert post(client, comparison, body).status_code == 201
    assert post(client, comparison, {**body, "time_spent_ms": 5400}).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        lambda left, right: {"winner": right},
        lambda left, right: {"strength": 1},
        lambda left, right: {"rationale": "Changed my mind."},
        lambda left, right: {"spans": []},
    ],
    ids=["winner", "strength", "rationale", "spans"],
)
def test_reusing_a_key_with_a_different_answer_is_refused_naming_the_key(client, comparison, change):
    left, right = comparison.candidate_ids
    body = {
        "winner": left,
        "strength": 2,
        "spans": [{"candidate": right, "start": 12, "end": 17, "category": "incorrect"}],
        "rationale": "Texas.",
    }
    assert post(client, comparison, body, key="k-42").status_code == 201
    response = post(client, comparison, {**body, **change(left, right)}, key="k-42")
    assert response.status_code == 409
    assert "Idempotency-Key 'k-42' was already used for a different answer" in response.json()["message"]
    assert response.json()["code"] == "idempotency_key_reused"
    judgment = Judgment.objects.get()
    assert (judgment.winner_id, judgment.strength, judgment.rationale) == (left, 2, "Texas.")


def test_reusing_a_key_for_another_comparison_is_refused(client, project, comparison):
    other = make_comparison(project)
    assert post(client, comparison, {"winner": comparison.candidate_ids[0]}).status_code == 201
    assert client.get(f"/api/v1/projects/{project.pk}/next/").json()["comparison"] == other.pk
    response = post(client, other, {"winner": other.candidate_ids[0]})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["message"]


def test_the_idempotency_key_is_required(client, comparison):
    response = client.post(f"/api/v1/comparisons/{comparison.pk}/judgments/", {"tie": True}, format="json")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda ids: {"winner": 999999}, "winner"),
        (lambda ids: {}, "winner"),
        (lambda ids: {"winner": ids[0], "tie": True}, "winner"),
        (lambda ids: {"ranking": [ids[0], ids[0]]}, "ranking"),
        (lambda ids: {"winner": ids[0], "strength": 9}, "strength"),
        # Strength is a magnitude toward the winner: never negative, and nothing to measure without a winner.
        (lambda ids: {"winner": ids[0], "strength": -2}, "strength"),
        (lambda ids: {"tie": True, "strength": 1}, "strength"),
        (lambda ids: {"ranking": [ids[1], ids[0]], "strength": 1}, "strength"),
        (lambda ids: {"winner": ids[0], "ratings": {str(ids[0]): {"helpful": 6}}}, "ratings.{a}.helpful"),
        (lambda ids: {"winner": ids[0], "ratings": {str(ids[0]): {"funny": 1}}}, "ratings.{a}.funny"),
        (lambda ids: {"winner": ids[0], "ratings": {"12345678": {"helpful": 1}}}, "ratings.12345678"),
        (
            lambda ids: {"winner": ids[0], "spans": [{"candidate": ids[0], "start": 0, "end": 3, "category": "rude"}]},
            "spans[0].category",
        ),
        (
            lambda ids: {
                "winner": ids[0],
                "spans": [{"candidate": ids[0], "start": 3, "end": 3, "category": "incorrect"}],
            },
            "spans[0]",
        ),
        (
            lambda ids: {
                "winner": ids[0],
                "spans": [{"candidate": 424242, "start": 0, "end": 1, "category": "incorrect"}],
            },
            "spans[0].candidate",
        ),
        (lambda ids: {"winner": ids[0], "shown_order": [ids[0]]}, "shown_order"),
        (lambda ids: {"winner": "left"}, "winner"),
    ],
)
def test_an_answer_that_breaks_the_schema_is_refused_naming_the_field(client, comparison, make_body, field):
    response = post(client, comparison, make_body(comparison.candidate_ids))
    assert response.status_code == 400, response.json()
    assert field.format(a=comparison.candidate_ids[0]) in response.json()["errors"], response.json()
    assert Judgment.objects.count() == 0
    assert Comparison.objects.get(pk=comparison.pk).judged == 0


def test_a_required_rationale_and_a_forbidden_tie_are_enforced(client, project, comparison):
    project.schema = {**project.schema, "rationale": "required", "allow_tie": False}
    project.save()
    response = post(client, comparison, {"tie": True})
    assert response.status_code == 400
    assert {"tie", "rationale"} <= set(response.json()["errors"])


def test_a_k_way_ranking_must_be_a_permutation(api, annotator, project):
    project.schema = {**project.schema, "arity": 3}
    project.save()
    comparison = make_comparison(project, arity=3)
    client = api.as_user(annotator)
    assert client.get(f"/api/v1/projects/{project.pk}/next/").json()["comparison"] == comparison.pk
    a, b, c = comparison.candidate_ids
    assert post(client, comparison, {"ranking": [a, b]}).status_code == 400
    response = post(client, comparison, {"ranking": [c, a, b]}, key="k2")
    assert response.status_code == 201
    assert Judgment.objects.get().ranking == [c, a, b]


def test_a_comparison_that_no_longer_needs_a_judgment_answers_409_and_writes_nothing(api, project, comparison):
    from datetime import timedelta

    from django.utils import timezone

    from annotation import queue

    late, prompt = UserFactory(), UserFactory()
    for user in (late, prompt):
        project.memberships.create(user=user, role="annotator")
    assert api.as_user(late).get(f"/api/v1/projects/{project.pk}/next/").status_code == 200
    queue.leases_expire(now=timezone.now() + timedelta(seconds=project.lease_seconds + 1))
    assert api.as_user(prompt).get(f"/api/v1/projects/{project.pk}/next/").json()["comparison"] == comparison.pk
    assert post(api.as_user(prompt), comparison, {"winner": comparison.candidate_ids[0]}, key="a").status_code == 201
    response = post(api.as_user(late), comparison, {"winner": comparison.candidate_ids[1]}, key="b")
    assert response.status_code == 409
    assert response.json()["code"] == "not_needed"
    assert Judgment.objects.count() == 1


def test_a_comparison_never_served_or_skipped_cannot_be_answered(api, project, annotator):
    never_served = make_comparison(project, priority=-1)
    skipped = make_comparison(project, priority=5)
    gold = make_comparison(project, is_gold=True, wanted=1_000_000, gold_answer={"winner": 0})
    client = api.as_user(annotator)
    assert client.post(f"/api/v1/comparisons/{skipped.pk}/skip/").status_code == 204
    for target in (never_served, skipped, gold):
        response = post(client, target, {"winner": target.candidate_ids[0]}, key=f"k{target.pk}")
        assert response.status_code == 409, response.json()
        assert response.json()["code"] == "no_live_lease"
    assert Judgment.objects.count() == 0
    assert Comparison.objects.filter(judged__gt=0).count() == 0


def test_a_ratings_key_that_is_not_an_ascii_number_is_refused_naming_it(client, comparison):
    response = post(client, comparison, {"winner": comparison.candidate_ids[0], "ratings": {"²": {"helpful": 3}}})
    assert response.status_code == 400
    assert "ratings.²" in response.json()["errors"]


def test_next_answers_204_when_nothing_is_left(api, annotator, project):
    assert api.as_user(annotator).get(f"/api/v1/projects/{project.pk}/next/").status_code == 204


def test_next_hides_gold_flags_and_model_origin_from_annotators(client, project, comparison):
    body = client.get(f"/api/v1/projects/{project.pk}/next/").json()
    assert body["comparison"] == comparison.pk
    assert sorted(c["id"] for c in body["candidates"]) == sorted(comparison.candidate_ids)  # in the order to show
    assert "is_gold" not in body and all("origin" not in c for c in body["candidates"])


def test_judgment_data_matches_the_serializer(client, comparison):
    from annotation.api.serializers import JudgmentSerializer, judgment_data

    left, right = comparison.candidate_ids
    body = {
        "ranking": [right, left],
        "spans": [{"candidate": left, "start": 0, "end": 5, "category": "incorrect", "note": "n"}],
        "ratings": {str(left): {"helpful": 3}},
        "time_spent_ms": 10,
    }
    created = post(client, comparison, body).json()
    judgment = Judgment.objects.select_related("annotator").prefetch_related("spans").get()
    assert judgment_data(judgment) == JudgmentSerializer(judgment).data == created


def test_next_leases_for_the_projects_lease_length_and_serves_gold_at_its_share(api, annotator, project):
    from datetime import datetime, timedelta

    from django.utils import timezone

    project.lease_seconds, project.gold_share = 1234, 1.0
    project.save()
    gold = make_comparison(project, is_gold=True, wanted=1_000_000, gold_answer={"winner": 0})
    make_comparison(project)
    body = api.as_user(annotator).get(f"/api/v1/projects/{project.pk}/next/").json()
    assert body["comparison"] == gold.pk
    expires = datetime.fromisoformat(body["lease_expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (timezone.now() + timedelta(seconds=1234))) < timedelta(seconds=5)


def test_type_errors_and_rule_errors_name_list_items_the_same_way(client, comparison):
    left = comparison.candidate_ids[0]
    wrong_type = {"ranking": ["first"], "spans": [{"candidate": left, "category": "incorrect", "start": "a"}]}
    assert set(post(client, comparison, wrong_type).json()["errors"]) == {"ranking[0]", "spans[0].start"}
    wrong_rule = {"winner": left, "spans": [{"candidate": left, "category": "rude", "start": 0, "end": 1}]}
    assert set(post(client, comparison, wrong_rule, key="k2").json()["errors"]) == {"spans[0].category"}


def test_next_ahead_serves_the_task_after_the_current_one(client, project, comparison):
    following = make_comparison(project)
    url = f"/api/v1/projects/{project.pk}/next/"
    ahead = client.get(url, {"ahead": 1})
    assert ahead.status_code == 200 and ahead.json()["comparison"] == following.pk
    assert ahead.json()["prompt"]["text"] and len(ahead.json()["candidates"]) == 2
    assert client.get(url).json()["comparison"] == comparison.pk  # a reload still shows the current task
    assert post(client, comparison, {"winner": comparison.candidate_ids[0]}).status_code == 201
    after = client.get(url).json()
    assert (after["comparison"], after["resumed"]) == (following.pk, True)
    assert client.get(url, {"ahead": 1}).status_code == 204  # nothing left after it


def test_next_ahead_must_be_0_or_1(client, project):
    response = client.get(f"/api/v1/projects/{project.pk}/next/", {"ahead": "2"})
    assert response.status_code == 400
    assert "ahead" in response.json()["errors"]
