"""Importing image candidates: a zip of a manifest and its files, or a multipart upload of both, through the same
all-or-nothing import as every file; the files land in storage by content hash and are served from there."""

import io
import json
import stat
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from annotation.importers import ImportRejected, import_file, import_job_run
from annotation.models import Candidate, Comparison, ImportJob, ImportStatus, Modality, Prompt, Role

from ..factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def png(color=(200, 30, 30), size=(8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg(color=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (5, 4), color).save(out, format="JPEG")
    return out.getvalue()


ROWS = [
    {
        "id": "cat",
        "text": "A cat on a mat",
        "candidates": [{"id": "cat-1", "media": "img/cat-1.png"}, {"id": "cat-2", "media": "img/cat-2.jpg"}],
        "comparisons": "pairs",
    },
    {
        "id": "dog",
        "text": "A dog in the snow",
        "candidates": [{"id": "dog-1", "media": "img/dog-1.png"}, {"id": "dog-2", "media": "img/dog-2.png"}],
        "comparisons": [{"id": "dog-gold", "candidate_ids": ["dog-1", "dog-2"], "gold": {"winner": "dog-2"}}],
    },
]
FILES = {
    "img/cat-1.png": png((200, 30, 30)),
    "img/cat-2.jpg": jpeg(),
    "img/dog-1.png": png((30, 200, 30)),
    "img/dog-2.png": png((30, 30, 200)),
}


def make_zip(path, rows=ROWS, files=FILES, manifest="manifest.jsonl", extra=()) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(manifest, "".join(json.dumps(row) + "\n" for row in rows))
        for name, data in files.items():
            archive.writestr(name, data)
        for info, data in extra:
            archive.writestr(info, data)
    return str(path)


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def image_project(db):
    return ProjectFactory(modality=Modality.IMAGE)


def stored_files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_zip_imports_prompts_candidates_with_their_files_and_comparisons(image_project, media_root, tmp_path):
    counts = import_file(project=image_project, kind="bundle", path=make_zip(tmp_path / "cats.zip", extra=[]))

    assert counts["prompts"] == {"created": 2, "unchanged": 0}
    assert counts["candidates"] == {"created": 4, "unchanged": 0}
    assert counts["comparisons"] == {"created": 2, "unchanged": 0}
    assert counts["media"] == {"created": 4, "unchanged": 0, "unused": 0, "unused_files": []}
    cat_2 = Candidate.objects.get(external_id="cat-2")
    assert (cat_2.mime_type, cat_2.media_width, cat_2.media_height) == ("image/jpeg", 5, 4)
    assert cat_2.media.name.startswith("candidates/sha256/") and cat_2.media.name.endswith(".jpg")
    assert (media_root / cat_2.media.name).read_bytes() == FILES["img/cat-2.jpg"]
    assert len(stored_files(media_root)) == 4
    gold = Comparison.objects.get(external_id="dog-gold")
    assert gold.is_gold and gold.gold_answer == {"winner": Candidate.objects.get(external_id="dog-2").pk}


def test_the_same_zip_twice_is_unchanged_the_second_time(image_project, media_root, tmp_path):
    path = make_zip(tmp_path / "cats.zip")
    import_file(project=image_project, kind="bundle", path=path)
    files_before = stored_files(media_root)

    again = import_file(project=image_project, kind="bundle", path=path)

    assert {name: c["created"] for name, c in again.items()} == {
        "prompts": 0,
        "candidates": 0,
        "comparisons": 0,
        "media": 0,
    }
    assert again["candidates"]["unchanged"] == 4 and again["media"]["unchanged"] == 4
    assert stored_files(media_root) == files_before


def test_the_same_image_under_two_names_is_stored_once(image_project, media_root, tmp_path):
    rows = [{"id": "p", "text": "t", "candidates": [{"id": "a", "media": "a.png"}, {"id": "b", "media": "b.png"}]}]
    path = make_zip(tmp_path / "z.zip", rows, {"a.png": png(), "b.png": png()})
    import_file(project=image_project, kind="bundle", path=path)
    assert len(stored_files(media_root)) == 1
    assert len({c.media.name for c in Candidate.objects.all()}) == 1


def test_a_candidate_whose_id_exists_with_another_image_is_an_error(image_project, media_root, tmp_path):
    import_file(project=image_project, kind="bundle", path=make_zip(tmp_path / "a.zip"))
    files = {**FILES, "img/cat-1.png": png((1, 2, 3))}
    with pytest.raises(ImportRejected) as rejected:
        import_file(project=image_project, kind="bundle", path=make_zip(tmp_path / "b.zip", files=files))
    assert rejected.value.errors == [
        {
            "line": 1,
            "field": "candidates[0].id",
            "message": "The candidate 'cat-1' already exists with a different media.",
        }
    ]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"files": {**FILES, "../evil.png": png()}},
            {
                "line": None,
                "field": "file",
                "message": "'../evil.png' has a '..' in its path, which would leave the zip's folder.",
            },
        ),
        (
            {"files": {**FILES, "/etc/evil.png": png()}},
            {"line": None, "field": "file", "message": "'/etc/evil.png' has an absolute path."},
        ),
        (
            {"files": {k: v for k, v in FILES.items() if k != "img/dog-2.png"}},
            {
                "line": 2,
                "field": "candidates[1].media",
                "message": "No file 'img/dog-2.png' in the zip (names are paths inside it, such as img/cat-1.png).",
            },
        ),
        (
            {"files": {**FILES, "img/dog-1.png": b"<svg><script>alert(1)</script></svg>"}},
            {
                "line": 2,
                "field": "candidates[0].media",
                "message": "img/dog-1.png: it is an SVG document (which may carry script), "
                "not a PNG, JPEG, WebP or GIF image (read from its content).",
            },
        ),
    ],
    ids=["dot-dot", "absolute", "missing-file", "bad-image"],
)
def test_a_bad_zip_imports_nothing_and_stores_no_file(image_project, media_root, tmp_path, change, error):
    path = make_zip(tmp_path / "bad.zip", **change)
    with pytest.raises(ImportRejected) as rejected:
        import_file(project=image_project, kind="bundle", path=path)
    assert error in rejected.value.errors
    assert not Prompt.objects.exists() and not Candidate.objects.exists() and not Comparison.objects.exists()
    assert stored_files(media_root) == []


def test_one_bad_image_on_the_last_line_rolls_back_the_files_of_the_good_ones(image_project, media_root, tmp_path):
    rows = [
        *ROWS,
        {
            "id": "bird",
            "text": "A bird",
            "candidates": [{"id": "b1", "media": "b1.png"}, {"id": "b2", "media": "b2.png"}],
        },
    ]
    whole = png((9, 9, 9), size=(64, 64))
    files = {**FILES, "b1.png": png((5, 5, 5)), "b2.png": whole[: len(whole) - 20]}
    with pytest.raises(ImportRejected) as rejected:
        import_file(project=image_project, kind="bundle", path=make_zip(tmp_path / "bad.zip", rows, files))
    assert [(e["line"], e["field"]) for e in rejected.value.errors] == [(3, "candidates[1].media")]
    assert rejected.value.errors[0]["message"].startswith("b2.png: a truncated or corrupt PNG image")
    assert not Candidate.objects.exists() and stored_files(media_root) == []


def test_files_are_deleted_again_when_writing_the_rows_fails(image_project, media_root, tmp_path, monkeypatch):
    from annotation.importers import writing

    def broken(ctx, plan):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writing, "_plan_write", broken)
    with pytest.raises(RuntimeError):
        import_file(project=image_project, kind="bundle", path=make_zip(tmp_path / "cats.zip"))
    assert not Candidate.objects.exists() and stored_files(media_root) == []


def test_symlinks_too_many_entries_and_zip_bombs_are_refused(image_project, media_root, tmp_path, settings):
    link = zipfile.ZipInfo("img/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(ImportRejected) as rejected:
        path = make_zip(tmp_path / "l.zip", extra=[(link, "/etc/passwd")])
        import_file(project=image_project, kind="bundle", path=path)
    assert rejected.value.errors == [{"line": None, "field": "file", "message": "'img/link.png' is a symbolic link."}]

    settings.MEDIA_ZIP_MAX_FILES = 4
    with pytest.raises(ImportRejected, match="holds 5 entries, more than the limit of 4"):
        import_file(project=image_project, kind="bundle", path=make_zip(tmp_path / "n.zip"))
    settings.MEDIA_ZIP_MAX_FILES = 100

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.jsonl", json.dumps(ROWS[0]) + "\n")
        archive.writestr("zeros.bin", bytes(50_000_000))  # 50 MB of zeros, 50 kB packed
    settings.MEDIA_ZIP_MAX_BYTES = 10_000_000
    with pytest.raises(ImportRejected, match=r"unpacks to 50,000,\d+ bytes, more than the limit of 10,000,000"):
        import_file(project=image_project, kind="bundle", path=str(bomb))
    assert not Prompt.objects.exists() and stored_files(media_root) == []


def test_files_no_row_names_are_ignored_and_reported(image_project, media_root, tmp_path):
    path = make_zip(tmp_path / "z.zip", files={**FILES, "img/spare.png": png((7, 7, 7)), ".DS_Store": b"\x00\x00"})
    counts = import_file(project=image_project, kind="bundle", path=path)
    assert counts["media"]["unused"] == 2 and counts["media"]["unused_files"] == [".DS_Store", "img/spare.png"]
    assert len(stored_files(media_root)) == 4


def test_a_plain_file_cannot_name_media_and_a_text_project_takes_none(image_project, media_root, tmp_path):
    plain = tmp_path / "rows.jsonl"
    plain.write_text(json.dumps(ROWS[0]) + "\n")
    with pytest.raises(ImportRejected) as rejected:
        import_file(project=image_project, kind="bundle", path=plain)
    assert rejected.value.errors[0]["field"] == "candidates[0].media"
    assert "files on the server are never read" in rejected.value.errors[0]["message"]

    with pytest.raises(ImportRejected) as rejected:
        import_file(project=ProjectFactory(), kind="bundle", path=make_zip(tmp_path / "z.zip"))
    assert {
        "line": 1,
        "field": "candidates[0].media",
        "message": "This is a text project: its candidates are texts, not media files.",
    } in rejected.value.errors


def test_a_candidates_file_in_a_zip_names_its_media_too(image_project, media_root, tmp_path):
    Prompt.objects.create(project=image_project, external_id="cat", text="A cat")
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("candidates.csv", "id,prompt_id,media\ncat-1,cat,cat-1.png\n")
        archive.writestr("cat-1.png", png())
    counts = import_file(project=image_project, kind="candidates", path=str(path))
    assert counts["candidates"]["created"] == 1
    assert Candidate.objects.get().mime_type == "image/png"


# --- Through the API ---------------------------------------------------------------------------


@pytest.fixture
def people(image_project):
    researcher, annotator = UserFactory(username="rita"), UserFactory(username="anna")
    MembershipFactory(project=image_project, user=researcher, role=Role.RESEARCHER)
    MembershipFactory(project=image_project, user=annotator, role=Role.ANNOTATOR)
    return researcher, annotator


def zip_upload(tmp_path, **kwargs) -> SimpleUploadedFile:
    path = make_zip(tmp_path / "cats.zip", **kwargs)
    with open(path, "rb") as f:
        return SimpleUploadedFile("cats.zip", f.read(), content_type="application/zip")


def test_a_zip_uploads_as_a_bundle_and_the_next_task_shows_the_stored_images(
    api, image_project, people, media_root, tmp_path
):
    researcher, annotator = people
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{image_project.pk}/imports/",
        {"kind": "bundle", "file": zip_upload(tmp_path)},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["file_format"] == "zip"
    assert response.json()["result"]["media"]["created"] == 4

    task = api.as_user(annotator).get(f"/api/v1/projects/{image_project.pk}/next/")
    assert task.status_code == 200
    candidates = task.json()["candidates"]
    stored = {c.pk: c for c in Candidate.objects.all()}
    for shown in candidates:
        candidate = stored[shown["id"]]
        assert shown["media_url"] == f"http://testserver/media/{candidate.media.name}"
        assert shown["mime_type"] == candidate.mime_type and shown["mime_type"].startswith("image/")
        assert (media_root / candidate.media.name).is_file()


def test_a_refused_zip_upload_answers_400_with_line_numbered_errors(api, image_project, people, media_root, tmp_path):
    researcher, _ = people
    files = {k: v for k, v in FILES.items() if k != "img/dog-2.png"}
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{image_project.pk}/imports/",
        {"kind": "bundle", "file": zip_upload(tmp_path, files=files)},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["file"] == [
        "line 2 (candidates[1].media): No file 'img/dog-2.png' in the zip "
        "(names are paths inside it, such as img/cat-1.png)."
    ]
    assert not Candidate.objects.exists()
    # Only the uploaded zip itself is kept, with its failed job; no candidate file.
    assert [f for f in stored_files(media_root) if not f.startswith("imports/")] == []


def test_a_multipart_upload_of_a_manifest_and_files_imports_the_same(api, image_project, people, media_root):
    researcher, _ = people
    rows = [
        {
            "id": "cat",
            "text": "A cat",
            "candidates": [{"id": "cat-1", "media": "cat-1.png"}, {"id": "cat-2", "media": "cat-2.jpg"}],
            "comparisons": "pairs",
        }
    ]
    manifest = SimpleUploadedFile("cats.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{image_project.pk}/imports/",
        {
            "kind": "bundle",
            "file": manifest,
            "media": [SimpleUploadedFile("cat-1.png", png()), SimpleUploadedFile("cat-2.jpg", jpeg())],
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["result"]["candidates"]["created"] == 2
    assert ImportJob.objects.get().original_name == "cats.zip"
    assert sorted(Candidate.objects.values_list("mime_type", flat=True)) == ["image/jpeg", "image/png"]


def test_a_multipart_upload_refuses_two_files_of_one_name(api, image_project, people, media_root):
    researcher, _ = people
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{image_project.pk}/imports/",
        {
            "kind": "bundle",
            "file": SimpleUploadedFile("m.jsonl", b"{}\n"),
            "media": [SimpleUploadedFile("a.png", png()), SimpleUploadedFile("a.png", png((1, 1, 1)))],
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["file"] == ["Two files are named 'a.png'; names must differ."]


def test_a_zip_too_large_for_the_request_is_queued_and_the_worker_imports_it(
    api, image_project, people, media_root, tmp_path, settings, django_capture_on_commit_callbacks, monkeypatch
):
    from annotation import tasks

    ran = []
    monkeypatch.setattr(tasks.import_run_task, "delay", lambda job_id: ran.append(import_job_run(job_id=job_id)))
    settings.IMPORT_INLINE_MAX_BYTES = 100
    researcher, _ = people
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(researcher).post(
            f"/api/v1/projects/{image_project.pk}/imports/",
            {"kind": "bundle", "file": zip_upload(tmp_path)},
            format="multipart",
        )
    assert response.status_code == 202
    (job,) = ran
    assert job.status == ImportStatus.SUCCEEDED, job.errors
    assert "media: 4 created, 0 unchanged" in job.message
    assert Candidate.objects.filter(media__startswith="candidates/sha256/").count() == 4


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_late_bad_row_also_leaves_no_file(media_root, tmp_path, monkeypatch):
    # Outside any transaction Postgres checks and writes in one pass, storing each batch's files as it goes:
    # a bad row in a later batch must take the earlier batches' files with it.
    from annotation.importers import files

    monkeypatch.setattr(files, "BATCH_ROWS", 1)
    project = ProjectFactory(modality=Modality.IMAGE)
    bad = {"id": "last", "text": "t", "candidates": [{"id": "l1", "media": "img/cat-1.png", "mime_type": "image/gif"}]}
    with pytest.raises(ImportRejected) as rejected:
        import_file(project=project, kind="bundle", path=make_zip(tmp_path / "bad.zip", rows=[*ROWS, bad]))
    assert [(e["line"], e["field"]) for e in rejected.value.errors] == [(3, "candidates[0].mime_type")]
    assert not Candidate.objects.exists() and stored_files(media_root) == []

    counts = import_file(project=project, kind="bundle", path=make_zip(tmp_path / "good.zip"))
    assert counts["media"]["created"] == 4 and len(stored_files(media_root)) == 4
