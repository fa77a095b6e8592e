"""Hostile bytes get a 400 naming where they are, never a database error: NUL characters anywhere in an import
(JSON metadata included) or in a query parameter. SQLite stores NUL, Postgres refuses it with a 500; the checks
must refuse it whatever the backend, so these tests hold on SQLite too."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Candidate, Judgment, Prompt, Role

from ..factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _upload(client, project, kind: str, rows: list[dict], url="imports", **fields):
    body = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    return client.post(
        f"/api/v1/projects/{project.pk}/{url}/",
        {"file": SimpleUploadedFile(f"{kind}.jsonl", body), "kind": kind, **fields},
        format="multipart",
    )


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        ([{"text": "fine"}, {"text": "ok", "metadata": {"source": "x\x00y"}}], "line 2 (metadata.source)"),
        ([{"text": "ok", "metadata": {"notes": ["a", {"deep": "\x00"}]}}], "line 1 (metadata.notes[1].deep)"),
        ([{"text": "ok", "metadata": {"k\x00": 1}}], "line 1 (metadata)"),
        ([{"text": "ok", "context": [{"role": "user", "content": "\x00"}]}], "line 1 (context[0].content)"),
        (
            [
                {
                    "id": "p",
                    "text": "t",
                    "candidates": [{"id": "c1", "text": "a", "origin": {"r": "\x00"}}, {"id": "c2", "text": "b"}],
                }
            ],
            "line 1 (candidates[0].origin.r)",
        ),
        ([{"id": "p", "text": "t", "metadata": {"m": "a\ud800"}, "candidates": []}], "line 1 (metadata.m)"),
    ],
)
def test_a_nul_anywhere_in_an_import_is_a_400_naming_line_and_field(api, project, researcher, rows, where):
    kind = "bundle" if "candidates" in rows[0] else "prompts"
    response = _upload(api.as_user(researcher), project, kind, rows)
    assert response.status_code == 400, response.content
    (message,) = response.json()["errors"]["file"]
    assert message.startswith(where + ": Holds a NUL character"), message
    assert not Prompt.objects.exists() and not Candidate.objects.exists()


def test_a_nul_in_a_label_import_is_a_400_naming_line_and_field(api, project, researcher):
    rows = [
        {"prompt": "Q", "chosen": "a", "rejected": "b"},
        {"prompt": "Q2", "chosen": "a\x00", "rejected": "b"},
        {"prompt": [{"role": "user", "content": "Q3\x00"}], "chosen": "a", "rejected": "b"},
    ]
    response = _upload(api.as_user(researcher), project, "pairs", rows, url="label-imports")
    assert response.status_code == 400, response.content
    assert [m.split(":")[0] for m in response.json()["errors"]["file"]] == [
        "line 2 (chosen)",
        "line 3 (prompt[0].content)",
    ]
    assert not Judgment.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "projects/{pk}/judgments/?annotator=1%00",
        "projects/{pk}/comparisons/?status=open%00",
        "projects/{pk}/next/?ahead=%00",
        "projects/{pk}/exports/stream/?shape=pairs&file_format=jsonl&annotators=anna%00",
        "projects/{pk}/judgments/?cursor=%00",
        "projects/{pk}/?anything=%00",
    ],
)
def test_a_nul_in_any_query_parameter_is_a_400_naming_it(api, project, researcher, url):
    MembershipFactory(project=project, user=UserFactory(username="anna"), role=Role.ANNOTATOR)
    response = api.as_user(researcher).get("/api/v1/" + url.format(pk=project.pk))
    assert response.status_code == 400, response.content
    name = url.split("?")[1].split("&")[-1].split("=")[0]
    assert response.json()["errors"] == {name: ["Must not hold a NUL character (\\u0000)."]}


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("url", ["/api/v1/auth/token/", "/api/v1/auth/session/", "/admin/login/"])
def test_a_body_over_the_upload_limit_is_a_json_error_naming_the_limit(db, settings, content_type, url):
    from django.test import Client

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"username": "a", "password": "y" * 5000})
    if content_type != "application/json":
        body = "username=a&password=" + "y" * 5000
    response = Client(enforce_csrf_checks=True).post(url, body, content_type=content_type)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert "larger than 1000 bytes" in response.json()["message"]


def test_a_form_without_a_length_over_the_limit_is_a_json_error(db, settings):
    """Chunked bodies carry no Content-Length: Django finds the size while parsing the form."""
    from django.core.exceptions import RequestDataTooBig
    from django.test import RequestFactory

    from config.urls import handler400

    request = RequestFactory().post("/api/v1/auth/token/")
    response = handler400(request, RequestDataTooBig("too big"))
    assert response.status_code == 413 and json.loads(response.content)["message"].startswith("The request body")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            'text\nfine\n"two\nlines"\ncaf\u00e9\n'.encode("latin-1"),
            "line 3: Not UTF-8 text: save the file as UTF-8 (CSV UTF-8).",
        ),
        (
            "t\u00e9xt\nfine\n".encode("latin-1"),
            "file: The header row is not UTF-8 text: save the file as UTF-8 (CSV UTF-8).",
        ),
    ],
)
def test_a_csv_that_is_not_utf8_names_the_line_not_a_byte_offset(api, project, researcher, body, error):
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{project.pk}/imports/",
        {"file": SimpleUploadedFile("prompts.csv", body), "kind": "prompts"},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["file"] == [error]
    assert response.json()["job"]["phase"] == "reading"  # where it failed
    assert not Prompt.objects.exists()
