"""The same file imported several times at once (a double-clicked upload, a client retry): one import creates the
rows, the others find them there and report them unchanged; never a 500, never a database's own message."""

import json
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from annotation.models import Candidate, Comparison, ImportJob, Judgment, Prompt, Role

from ..factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

UPLOADS = 4


def _at_once(post) -> list:
    """``post()`` from UPLOADS threads released together, each on its own connection."""
    barrier = threading.Barrier(UPLOADS)
    responses: list = [None] * UPLOADS

    def run(i):
        try:
            barrier.wait()
            responses[i] = post()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(UPLOADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return responses


@pytest.fixture
def researcher_client():
    project = ProjectFactory()
    researcher = UserFactory(username="rita")
    MembershipFactory(project=project, user=researcher, role=Role.RESEARCHER)
    client = APIClient()
    client.force_authenticate(researcher)
    return project, client


def test_the_same_bundle_imported_four_times_at_once_is_written_once(researcher_client):
    project, client = researcher_client
    rows = [
        {
            "id": f"p{i}",
            "text": f"Prompt {i}",
            "candidates": [{"id": f"p{i}-a", "text": "A"}, {"id": f"p{i}-b", "text": "B"}],
            "comparisons": "pairs",
        }
        for i in range(600)
    ]
    body = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"

    def post():
        return client.post(
            f"/api/v1/projects/{project.pk}/imports/",
            {"file": SimpleUploadedFile("bundle.jsonl", body), "kind": "bundle"},
            format="multipart",
        )

    responses = _at_once(post)
    assert [r.status_code for r in responses] == [201] * UPLOADS, [r.content[:300] for r in responses]
    created = [r.json()["result"]["prompts"]["created"] for r in responses]
    assert sorted(created) == [0] * (UPLOADS - 1) + [600]
    for r in responses:
        if r.json()["result"]["prompts"]["created"] == 0:
            assert r.json()["result"]["prompts"]["unchanged"] == 600
    assert Prompt.objects.count() == 600 and Candidate.objects.count() == 1200 and Comparison.objects.count() == 600
    assert ImportJob.objects.filter(status="succeeded").count() == UPLOADS


def test_the_same_labels_imported_four_times_at_once_are_written_once(researcher_client):
    project, client = researcher_client
    body = "\n".join(
        json.dumps({"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) for i in range(400)
    ).encode()

    def post():
        return client.post(
            f"/api/v1/projects/{project.pk}/label-imports/",
            {"file": SimpleUploadedFile("pairs.jsonl", body), "kind": "pairs"},
            format="multipart",
        )

    responses = _at_once(post)
    assert [r.status_code for r in responses] == [201] * UPLOADS, [r.content[:300] for r in responses]
    assert sorted(r.json()["judgments"] for r in responses) == [0] * (UPLOADS - 1) + [400]
    assert Judgment.objects.count() == 400 and Prompt.objects.count() == 400
