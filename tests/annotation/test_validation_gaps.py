"""Values that used to pass unchecked are refused, naming the field: a tie with a strength, a margin scale that
is not a finite number, a round filter that is not a round id."""

import pytest

from annotation.models import Judgment

from ..factories import make_comparison

pytestmark = pytest.mark.django_db


def test_a_tie_with_a_strength_is_refused_naming_strength(api, project, annotator):
    comparison = make_comparison(project)
    client = api.as_user(annotator)
    assert client.get(f"/api/v1/projects/{project.pk}/next/").status_code == 200
    url = f"/api/v1/comparisons/{comparison.pk}/judgments/"
    response = client.post(url, {"tie": True, "strength": 2}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "strength": ["A tie prefers neither candidate: leave strength out (or give 0)."]
    }
    assert not Judgment.objects.exists()
    assert client.post(url, {"tie": True, "strength": 0}, format="json", HTTP_IDEMPOTENCY_KEY="t2").status_code == 201


@pytest.mark.parametrize("scale", ["inf", "-inf", "nan", "NaN", "1e999", "-1"])
def test_a_margin_scale_that_is_not_a_finite_number_is_refused(api, project, researcher, scale):
    client = api.as_user(researcher)
    stream = client.get(
        f"/api/v1/projects/{project.pk}/exports/stream/?shape=pairs&file_format=jsonl&margin_scale={scale}"
    )
    assert stream.status_code == 400
    assert list(stream.json()["errors"]) == ["options.margin_scale"]
    job = client.post(
        f"/api/v1/projects/{project.pk}/exports/",
        {"shape": "pairs", "file_format": "jsonl", "options": {"margin_scale": scale}},
        format="json",
    )
    assert job.status_code == 400 and list(job.json()["errors"]) == ["options.margin_scale"]


@pytest.mark.parametrize("rounds", ["abc", "1,two", "-3", "1.5"])
def test_a_rounds_filter_that_is_not_a_round_id_is_refused(api, project, researcher, rounds):
    response = api.as_user(researcher).get(
        f"/api/v1/projects/{project.pk}/exports/stream/?shape=pairs&file_format=jsonl&rounds={rounds}"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["rounds"]
    assert "whole numbers" in response.json()["errors"]["rounds"][0]


def test_a_rounds_filter_of_ids_and_none_is_taken(api, project, researcher):
    response = api.as_user(researcher).get(
        f"/api/v1/projects/{project.pk}/exports/stream/?shape=pairs&file_format=jsonl&rounds=3,none"
    )
    assert response.status_code == 200
