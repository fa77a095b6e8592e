"""Importing labels: exports round-trip in every format; pairs seed a project; a bad file changes nothing."""

import csv
import json

import pytest
from django.core.management import call_command

from annotation.exporters import DATA_FILE, FORMATS, ExportInvalid, export_request_parse, export_to_folder
from annotation.importers.labelled import labelled_import
from annotation.importers.rejection import ImportRejected
from annotation.models import Candidate, Comparison, Judgment, Membership, Prompt, Role, SpanMark

from ..factories import ProjectFactory, UserFactory, make_comparison
from .export_read import read_rows
from .export_world import judged_project

pytestmark = pytest.mark.django_db


def _export(project, folder, shape, file_format, **kwargs):
    export_to_folder(project, export_request_parse(shape=shape, file_format=file_format, **kwargs), folder)
    return folder if file_format == "hf" else folder / DATA_FILE[file_format]


def _comparable(rows, *, drop=("judgment_id",)):
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in rows)


def _copy_of(project):
    """An empty project with the same members: judgments may only be credited to a project's members."""
    copy = ProjectFactory(name="Copy")
    for membership in Membership.objects.filter(project=project):
        Membership.objects.create(project=copy, user=membership.user, role=membership.role)
    return copy


def _member(project, user):
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


def _table_counts():
    return [m.objects.count() for m in (Prompt, Candidate, Comparison, Judgment, SpanMark)]


@pytest.mark.parametrize("file_format", FORMATS)
def test_exported_judgments_import_back_as_the_same_judgments(tmp_path, file_format):
    source = judged_project()
    path = _export(source.project, tmp_path / "out", "judgments", file_format, filters={"gold": "include"})
    copy = _copy_of(source.project)
    counts = labelled_import(project=copy, kind="judgments", path=path, file_format=file_format)
    assert counts["judgments"] == 14 and counts["comparisons"] == 8
    again = tmp_path / "again"
    _export(copy, again, "judgments", file_format, filters={"gold": "include"})
    first = read_rows(tmp_path / "out", file_format)
    second = read_rows(again, file_format)
    assert _comparable(second) == _comparable(first)
    gold = next(r for r in second if r["gold_answer"])
    gold_answer = json.loads(gold["gold_answer"])
    candidates = json.loads(gold["candidates"]) if file_format == "csv" else gold["candidates"]
    assert gold_answer == {"winner": candidates[1]["id"]}
    # Imported labels are not served again.
    assert not Comparison.objects.filter(project=copy, status="open").exists()


@pytest.mark.parametrize("file_format", FORMATS)
def test_exported_pairs_import_back_as_the_same_pairs(tmp_path, file_format):
    source = judged_project()
    path = _export(source.project, tmp_path / "out", "pairs", file_format)
    copy = _copy_of(source.project)
    labelled_import(project=copy, kind="pairs", path=path, file_format=file_format)
    _export(copy, tmp_path / "again", "pairs", file_format)
    keep = ("prompt", "chosen", "rejected", "margin", "label", "strength", "annotator", "split")
    before = [{k: r[k] for k in keep} for r in read_rows(tmp_path / "out", file_format)]
    after = [{k: r[k] for k in keep} for r in read_rows(tmp_path / "again", file_format)]
    assert _comparable(after) == _comparable(before)


def test_reimporting_the_same_file_adds_nothing(tmp_path):
    source = judged_project()
    path = _export(source.project, tmp_path / "out", "judgments", "jsonl")
    copy = _copy_of(source.project)
    labelled_import(project=copy, kind="judgments", path=path, file_format="jsonl")
    before = _table_counts()
    counts = labelled_import(project=copy, kind="judgments", path=path, file_format="jsonl")
    assert counts["judgments"] == 0 and counts["unchanged"] == 13 and _table_counts() == before


def test_public_pairs_with_implicit_prompts_seed_a_project(tmp_path):
    """hh-rlhf's shape: the whole dialogue in chosen and rejected, the prompt their common beginning."""
    seeder = UserFactory(username="seeder")
    rows = [
        {
            "chosen": "\n\nHuman: Is the sky blue?\n\nAssistant: Yes, on a clear day.",
            "rejected": "\n\nHuman: Is the sky blue?\n\nAssistant: Ask someone else.",
        },
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
            "margin": 2,
        },
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    project = ProjectFactory()
    _member(project, seeder)
    call_command("import_labels", str(path), project=project.pk, kind="pairs", annotator="seeder")
    first = Prompt.objects.get(project=project, text__endswith="Assistant:")
    assert first.text == "Human: Is the sky blue?\n\nAssistant:"
    judgment = Judgment.objects.get(comparison__prompt=first)
    assert judgment.annotator == seeder and judgment.winner.text == "Yes, on a clear day."
    assert Judgment.objects.get(comparison__prompt__text="Hi").strength == 2


def test_a_saved_datasetdict_imports_the_named_split(tmp_path):
    import datasets

    UserFactory(username="seeder")
    pairs = {"prompt": ["Q1", "Q2"], "chosen": ["good", "fine"], "rejected": ["bad", "poor"]}
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(pairs),
            "test": datasets.Dataset.from_dict({k: v[:1] for k, v in pairs.items()}),
        }
    ).save_to_disk(str(tmp_path / "dd"))
    project = ProjectFactory()
    counts = labelled_import(
        project=project,
        kind="pairs",
        path=tmp_path / "dd",
        file_format="hf",
        options={"split": "test"},
        user=_member(project, UserFactory(username="seeder")),
    )
    assert counts["judgments"] == 1 and Prompt.objects.get(project=project).text == "Q1"


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_a_malformed_import_changes_nothing_and_names_each_bad_line(tmp_path, file_format):
    source = judged_project()
    path = _export(source.project, tmp_path / "out", "judgments", file_format)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = 1 if file_format == "csv" else 0
    # Line 3: an annotator nobody has; line 5: a winner that is not a candidate.
    if file_format == "jsonl":
        rows = [json.loads(line) for line in lines]
        rows[2]["annotator"] = "ghost"
        rows[4]["winner"] = "not-a-candidate"
        lines = [json.dumps(r) for r in rows]
    else:
        lines[header + 2] = (
            lines[header + 2].replace(",anna,", ",ghost,").replace(",bob,", ",ghost,").replace(",cara,", ",ghost,")
        )
        rows = read_rows(tmp_path / "out", "csv")
        lines[header + 4] = lines[header + 4].replace(f",{rows[4]['winner']},", ",not-a-candidate,", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    copy = _copy_of(source.project)
    before = _table_counts()
    with pytest.raises(ImportRejected) as caught:
        labelled_import(project=copy, kind="judgments", path=path, file_format=file_format)
    assert [(e["line"], e["field"]) for e in caught.value.errors] == [(3, "annotator"), (5, "winner")]
    assert _table_counts() == before


def test_contradictions_inside_the_file_are_errors(tmp_path):
    UserFactory(username="seeder")
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt_id": "p1", "prompt": "Q", "chosen": "a", "rejected": "b"},
                {"prompt_id": "p1", "prompt": "Another Q", "chosen": "a", "rejected": "b"},
                {"prompt": "Q", "chosen": "same", "rejected": "same"},
                {"prompt": "Q", "rejected": "b"},
            ]
        )
    )
    project = ProjectFactory()
    with pytest.raises(ImportRejected) as caught:
        labelled_import(
            project=project, kind="pairs", path=path, file_format="jsonl", user=_member(project, UserFactory())
        )
    assert [e["line"] for e in caught.value.errors] == [2, 3, 4]
    assert Prompt.objects.count() == 0


def test_the_api_imports_pairs_and_refuses_a_bad_file_naming_its_lines(api, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.models import Membership, Role

    project = ProjectFactory()
    researcher = UserFactory(username="rita")
    Membership.objects.create(project=project, user=researcher, role=Role.RESEARCHER)
    client = api.as_user(researcher)
    bad = b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n{"prompt": "Q2", "chosen": "x"}\n'
    response = client.post(
        f"/api/v1/projects/{project.pk}/label-imports/",
        {"file": SimpleUploadedFile("pairs.jsonl", bad), "kind": "pairs"},
        format="multipart",
    )
    assert response.status_code == 400 and response.json()["errors"]["file"] == ["line 2 (rejected): Required."]
    assert Judgment.objects.filter(project=project).count() == 0
    # A signed strength (HelpSteer2's −3..3, older Tandem exports) is stored as how much better the winner is.
    good = b'{"prompt": "Q", "chosen": "a", "rejected": "b", "strength": -2}\n'
    response = client.post(
        f"/api/v1/projects/{project.pk}/label-imports/",
        {"file": SimpleUploadedFile("pairs.jsonl", good), "kind": "pairs"},
        format="multipart",
    )
    assert response.status_code == 201 and response.json()["judgments"] == 1
    judgment = Judgment.objects.get(project=project)
    assert judgment.annotator == researcher and judgment.strength == 2 and judgment.winner.text == "a"


def test_a_csv_that_is_not_utf8_is_refused_naming_its_line(api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.models import Membership, Role

    project = ProjectFactory()
    researcher = UserFactory(username="rita")
    Membership.objects.create(project=project, user=researcher, role=Role.RESEARCHER)
    latin1 = "prompt,chosen,rejected\nQ,a,b\nQ2,caf\u00e9,x\n".encode("latin-1")
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{project.pk}/label-imports/",
        {"file": SimpleUploadedFile("pairs.csv", latin1), "kind": "pairs"},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"]["file"] == ["line 3: Not UTF-8 text: save the file as UTF-8."]
    assert Judgment.objects.filter(project=project).count() == 0


def test_judgments_may_only_be_credited_to_members_of_the_project(api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    project = ProjectFactory()
    researcher = UserFactory(username="rita")
    Membership.objects.create(project=project, user=researcher, role=Role.RESEARCHER)
    UserFactory(username="mallory")  # has an account, is not in this project
    client = api.as_user(researcher)

    def post(body: bytes, **fields):
        return client.post(
            f"/api/v1/projects/{project.pk}/label-imports/",
            {"file": SimpleUploadedFile("pairs.jsonl", body), "kind": "pairs", **fields},
            format="multipart",
        )

    named = post(
        b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n'
        b'{"prompt": "Q2", "chosen": "a", "rejected": "b", "annotator": "mallory"}\n'
    )
    assert named.status_code == 400
    assert named.json()["errors"]["file"] == [
        "line 2 (annotator): 'mallory' is not a member of this project; add them as a member first."
    ]
    credited = post(b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n', annotator="mallory")
    assert credited.status_code == 400 and "'mallory' is not a member of this project" in credited.json()["message"]
    assert Judgment.objects.count() == 0 and Prompt.objects.count() == 0
    Membership.objects.create(project=project, user=UserFactory(username="mallory"), role=Role.ANNOTATOR)
    assert post(b'{"prompt": "Q", "chosen": "a", "rejected": "b"}\n', annotator="mallory").status_code == 201
    assert Judgment.objects.get().annotator.username == "mallory"


FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+2", "-3+4", "@SUM(A1)", "\tTab", "\rCR", "'=quoted already"]


@pytest.mark.parametrize("shape", ["pairs", "judgments"])
def test_a_spreadsheet_safe_csv_runs_no_formula_and_imports_back_unchanged(tmp_path, shape):
    from .export_world import judge

    project = ProjectFactory(name="Formulas")
    anna = _member(project, UserFactory(username="anna"))
    for i, text in enumerate(FORMULAS):
        comparison = make_comparison(project, texts=[text, f"plain {i}"])
        Prompt.objects.filter(pk=comparison.prompt_id).update(text=f"=PROMPT({i})")
        judge(comparison, anna, winner=0, strength=1 if i % 2 else 2, rationale=f"-because {text}", ratings={})
    safe = _export(project, tmp_path / "safe", shape, "csv", options={"spreadsheet_safe": True})
    with open(safe, encoding="utf-8", newline="") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    formulas = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert formulas == [c for c in formulas if c.lstrip("-").replace(".", "", 1).isdigit()]  # numbers only
    assert "'=PROMPT(3)" in cells
    if shape == "pairs":  # judgments hold candidates inside JSON cells, which start with [
        assert '\'=HYPERLINK("http://evil","x")' in cells and "''=quoted already" in cells
    else:
        assert "'-because +1+2" in cells

    plain = _export(project, tmp_path / "plain", shape, "csv")
    copy = _copy_of(project)
    labelled_import(project=copy, kind=shape, path=safe, file_format="csv")
    _export(copy, tmp_path / "again", shape, "csv")
    keep = ("prompt", "chosen", "rejected", "margin", "label", "strength", "annotator", "split", "rationale", "winner")

    def comparable(folder):
        return _comparable([{k: v for k, v in r.items() if k in keep} for r in read_rows(folder, "csv")])

    assert comparable(tmp_path / "again") == comparable(plain.parent)


def test_spreadsheet_safe_is_for_csv_only():
    with pytest.raises(ExportInvalid) as caught:
        export_request_parse(shape="pairs", file_format="jsonl", options={"spreadsheet_safe": True})
    assert list(caught.value.errors) == ["options.spreadsheet_safe"]
