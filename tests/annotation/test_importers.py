"""Importing prompts, candidates and comparisons from JSON Lines, CSV and Parquet."""

import csv
import io
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation import planner_statistics
from annotation.comparisons import GOLD_WANTED
from annotation.importers import (
    ImportRejected,
    files,
    import_file,
    import_job_create,
    import_job_run,
    jobs,
    rejection,
    writing,
)
from annotation.models import (
    Candidate,
    Comparison,
    ImportJob,
    ImportStatus,
    Modality,
    Prompt,
)
from annotation.tasks import planner_statistics_refresh_task

from ..factories import CandidateFactory, ProjectFactory, PromptFactory

pytestmark = pytest.mark.django_db

FORMATS = ["jsonl", "csv", "parquet"]
NESTED = {"context", "metadata", "origin", "candidate_ids", "gold", "candidates", "comparisons"}


def write(tmp_path, rows: list[dict], file_format: str, name: str = "data") -> str:
    """Write rows as JSON Lines, CSV (nested values as JSON text) or Parquet (the same)."""
    path = tmp_path / f"{name}.{file_format}"
    if file_format == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(path)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    flat = [
        {
            key: json.dumps(row[key]) if key in NESTED and not isinstance(row.get(key), str | None) else row.get(key)
            for key in columns
        }
        for row in rows
    ]
    if file_format == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in flat)
    else:
        pq.write_table(pa.Table.from_pylist(flat), path)
    return str(path)


def rejected(project, kind, path, **kwargs) -> list[dict]:
    with pytest.raises(ImportRejected) as caught:
        import_file(project=project, kind=kind, path=path, **kwargs)
    return caught.value.errors


def bundle_row(i: int, **extra) -> dict:
    return {
        "id": f"q{i}",
        "text": f"Question {i}?",
        "candidates": [{"id": f"q{i}-{k}", "text": f"Answer {k} to {i}."} for k in "abc"],
        "comparisons": "pairs",
        **extra,
    }


@pytest.fixture
def with_prompts(project):
    """Two prompts with two candidates each, already in the project."""
    for i in range(2):
        prompt = PromptFactory(project=project, external_id=f"q{i}", text=f"Question {i}?")
        for k in "ab":
            CandidateFactory(prompt=prompt, external_id=f"q{i}-{k}", text=f"Answer {k}.")
    return project


# --- Each kind in each format -----------------------------------------------------------------


@pytest.mark.parametrize("file_format", FORMATS)
def test_prompts_import_in_every_format(project, tmp_path, file_format):
    rows = [
        {"id": "q1", "text": "What is 2 + 2?", "split": "eval", "metadata": {"source": "test"}},
        {
            "id": "q2",
            "text": "And now?",
            "context": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        },
    ]
    counts = import_file(project=project, kind="prompts", path=write(tmp_path, rows, file_format))
    assert counts == {"prompts": {"created": 2, "unchanged": 0}}
    q1, q2 = Prompt.objects.filter(project=project).order_by("external_id")
    assert (q1.text, q1.split, q1.metadata, q1.context) == ("What is 2 + 2?", "eval", {"source": "test"}, [])
    assert (q2.split, q2.context[1]) == ("train", {"role": "assistant", "content": "Hello!"})


@pytest.mark.parametrize("file_format", FORMATS)
def test_candidates_import_in_every_format(with_prompts, tmp_path, file_format):
    rows = [
        {"id": "q0-c", "prompt_id": "q0", "text": "A third answer.", "metadata": {"model": "m1"}},
        {"prompt_id": "q1", "text": "Markdown *answer*.", "mime_type": "text/markdown", "origin": {"round": 3}},
    ]
    counts = import_file(project=with_prompts, kind="candidates", path=write(tmp_path, rows, file_format))
    assert counts == {"candidates": {"created": 2, "unchanged": 0}}
    third = Candidate.objects.get(project=with_prompts, external_id="q0-c")
    assert (third.prompt.external_id, third.metadata, third.source) == ("q0", {"model": "m1"}, "imported")
    derived = Candidate.objects.get(project=with_prompts, prompt__external_id="q1", text="Markdown *answer*.")
    assert derived.external_id.startswith("c-")
    assert (derived.mime_type, derived.origin) == ("text/markdown", {"round": 3})


@pytest.mark.parametrize("file_format", FORMATS)
def test_comparisons_import_in_every_format(with_prompts, tmp_path, file_format):
    rows = [
        {"id": "cmp-1", "prompt_id": "q0", "candidate_ids": ["q0-b", "q0-a"], "priority": 5, "wanted": 3},
        {"prompt_id": "q1", "candidate_ids": ["q1-a", "q1-b"]},
    ]
    counts = import_file(project=with_prompts, kind="comparisons", path=write(tmp_path, rows, file_format))
    assert counts == {"comparisons": {"created": 2, "unchanged": 0}}
    first = Comparison.objects.get(project=with_prompts, external_id="cmp-1")
    b, a = (Candidate.objects.get(project=with_prompts, external_id=e).pk for e in ("q0-b", "q0-a"))
    assert (first.candidate_ids, first.priority, first.wanted, first.is_gold) == ([b, a], 5, 3, False)
    second = Comparison.objects.get(project=with_prompts, prompt__external_id="q1")
    assert (second.priority, second.wanted) == (0, with_prompts.overlap)


@pytest.mark.parametrize("file_format", FORMATS)
def test_bundles_import_in_every_format(project, tmp_path, file_format):
    rows = [bundle_row(0, priority=2), bundle_row(1, comparisons=None)]
    counts = import_file(project=project, kind="bundle", path=write(tmp_path, rows, file_format))
    assert counts == {
        "prompts": {"created": 2, "unchanged": 0},
        "candidates": {"created": 6, "unchanged": 0},
        "comparisons": {"created": 3, "unchanged": 0},
    }
    comparisons = Comparison.objects.filter(project=project).order_by("pk")
    assert {c.prompt.external_id for c in comparisons} == {"q0"}
    assert {c.priority for c in comparisons} == {2}
    pk = {c.external_id: c.pk for c in Candidate.objects.filter(project=project)}
    assert [c.candidate_ids for c in comparisons] == [
        [pk["q0-a"], pk["q0-b"]],
        [pk["q0-a"], pk["q0-c"]],
        [pk["q0-b"], pk["q0-c"]],
    ]


def test_a_parquet_file_may_hold_nested_values_natively(project, tmp_path):
    table = pa.Table.from_pylist(
        [
            {
                "id": "q0",
                "text": "Question?",
                "candidates": [{"id": "a", "text": "Yes."}, {"id": "b", "text": "No."}],
                "comparisons": [["b", "a"]],
            }
        ]
    )
    path = tmp_path / "native.parquet"
    pq.write_table(table, path)
    counts = import_file(project=project, kind="bundle", path=path)
    assert counts["comparisons"]["created"] == 1
    comparison = Comparison.objects.get(project=project)
    assert comparison.candidate_ids == [Candidate.objects.get(external_id=e).pk for e in ("b", "a")]


def test_a_bundle_builds_k_way_groups_for_a_ranking_project(tmp_path):
    project = ProjectFactory(schema={"arity": 3})
    row = {"id": "q", "text": "Rank these.", "candidates": [{"id": c, "text": c} for c in "abcd"]}
    import_file(project=project, kind="bundle", path=write(tmp_path, [{**row, "comparisons": "groups"}], "jsonl"))
    pk = {c.external_id: c.pk for c in Candidate.objects.filter(project=project)}
    groups = [c.candidate_ids for c in Comparison.objects.filter(project=project).order_by("pk")]
    assert groups == [[pk["a"], pk["b"], pk["c"]], [pk["d"], pk["a"], pk["b"]]]


def test_the_comparisons_option_applies_to_bundle_rows_without_the_column(project, tmp_path):
    row = {"id": "q", "text": "?", "candidates": [{"id": c, "text": c} for c in "ab"]}
    path = write(tmp_path, [row], "jsonl")
    counts = import_file(project=project, kind="bundle", path=path, options={"comparisons": "pairs"})
    assert counts["comparisons"]["created"] == 1


# --- Re-import ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", FORMATS)
def test_importing_the_same_file_twice_changes_nothing(project, tmp_path, file_format):
    rows = [bundle_row(0), {"text": "No id: one is derived.", "candidates": [{"text": "x"}, {"text": "y"}]}]
    path = write(tmp_path, rows, file_format)
    import_file(project=project, kind="bundle", path=path, options={"comparisons": "pairs"})
    counts = import_file(project=project, kind="bundle", path=path, options={"comparisons": "pairs"})
    assert counts == {
        "prompts": {"created": 0, "unchanged": 2},
        "candidates": {"created": 0, "unchanged": 5},
        "comparisons": {"created": 0, "unchanged": 4},
    }
    assert (Prompt.objects.count(), Candidate.objects.count(), Comparison.objects.count()) == (2, 5, 4)
    assert [len(c.candidate_ids) for c in Comparison.objects.all()] == [2, 2, 2, 2]


def test_a_file_that_adds_to_an_earlier_import_creates_only_the_new_rows(project, tmp_path):
    import_file(project=project, kind="bundle", path=write(tmp_path, [bundle_row(0)], "jsonl", "first"))
    counts = import_file(
        project=project, kind="bundle", path=write(tmp_path, [bundle_row(0), bundle_row(1)], "jsonl", "second")
    )
    assert counts["prompts"] == {"created": 1, "unchanged": 1}
    assert counts["comparisons"] == {"created": 3, "unchanged": 3}


def test_a_stored_id_with_different_content_is_an_error_and_nothing_is_written(project, tmp_path):
    import_file(project=project, kind="bundle", path=write(tmp_path, [bundle_row(0)], "jsonl", "first"))
    changed = bundle_row(0, text="Another question?")
    errors = rejected(project, "bundle", write(tmp_path, [bundle_row(1), changed], "jsonl", "second"))
    assert errors == [{"line": 2, "field": "id", "message": "The prompt 'q0' already exists with a different text."}]
    assert not Prompt.objects.filter(external_id="q1").exists()


def test_a_column_left_out_is_not_compared_on_re_import(with_prompts, tmp_path):
    Prompt.objects.filter(external_id="q0").update(metadata={"kept": True})
    counts = import_file(
        project=with_prompts, kind="prompts", path=write(tmp_path, [{"id": "q0", "text": "Question 0?"}], "jsonl")
    )
    assert counts == {"prompts": {"created": 0, "unchanged": 1}}
    assert Prompt.objects.get(external_id="q0").metadata == {"kept": True}


# --- Bad rows and bad files ---------------------------------------------------------------------------


def test_a_file_with_invalid_rows_imports_nothing_and_reports_every_bad_row(project, tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(bundle_row(0)),
        "{not json",
        json.dumps({"id": "q2", "text": "", "split": "test", "candidates": [{"id": "x", "text": "x"}]}),
        "",
        json.dumps({**bundle_row(3), "colour": "red"}),
        json.dumps(bundle_row(4, candidates=[{"id": "q0-a", "text": "taken"}, {"id": "z", "text": 7}])),
        json.dumps(bundle_row(0)),
        json.dumps(bundle_row(7, comparisons="triples")),
        json.dumps(["a", "list"]),
    ]
    path.write_text("\n".join(lines) + "\n")
    errors = rejected(project, "bundle", path)
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, None),
        (3, "text"),
        (3, "split"),
        (5, "colour"),
        (6, "candidates[1].text"),
        (7, "id"),
        (7, "candidates[0].id"),
        (7, "candidates[1].id"),
        (7, "candidates[2].id"),
        (7, "comparisons[0].id"),
        (7, "comparisons[1].id"),
        (7, "comparisons[2].id"),
        (8, "comparisons"),
        (9, None),
    ]
    assert "also on line 1" in errors[5]["message"]
    assert "Unknown mode 'triples'" in errors[12]["message"]
    assert Prompt.objects.count() == Candidate.objects.count() == Comparison.objects.count() == 0


def test_csv_errors_are_numbered_by_data_row(with_prompts, tmp_path):
    rows = [
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "priority": "1"},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "priority": "high"},
        {"prompt_id": "q0", "candidate_ids": "[broken", "priority": "1"},
    ]
    errors = rejected(with_prompts, "comparisons", write(tmp_path, rows, "csv"))
    assert [(e["line"], e["field"]) for e in errors] == [(2, "priority"), (3, "candidate_ids")]
    assert "not 'high'" in errors[0]["message"]


def test_references_are_checked_against_the_project(with_prompts, tmp_path):
    other = PromptFactory(project=ProjectFactory(), external_id="elsewhere")
    CandidateFactory(prompt=other, external_id="q9-a")
    rows = [
        {"prompt_id": "nope", "candidate_ids": ["q0-a", "q0-b"]},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q1-b"]},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q9-a"]},
    ]
    errors = rejected(with_prompts, "comparisons", write(tmp_path, rows, "jsonl"))
    assert [(e["line"], e["field"]) for e in errors] == [(1, "prompt_id"), (2, "candidate_ids"), (3, "candidate_ids")]
    assert errors[1]["message"] == "Candidate(s) of another prompt, not of 'q0': 'q1-b'."
    assert errors[2]["message"] == "Unknown candidate(s): 'q9-a'."


def test_a_candidate_for_an_unknown_prompt_is_an_error(with_prompts, tmp_path):
    errors = rejected(with_prompts, "candidates", write(tmp_path, [{"prompt_id": "q7", "text": "Hi"}], "csv"))
    assert errors == [{"line": 1, "field": "prompt_id", "message": "Unknown prompt 'q7': import the prompt first."}]


def test_a_comparison_must_have_as_many_candidates_as_the_schema_says(with_prompts, tmp_path):
    rows = [{"prompt_id": "q0", "candidate_ids": ["q0-a"]}, {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-a"]}]
    errors = rejected(with_prompts, "comparisons", write(tmp_path, rows, "jsonl"))
    assert errors[0]["message"] == "Has 1 candidates; this project compares 2 at a time (its schema's arity)."
    assert errors[1]["message"] == "Lists a candidate twice."


def test_pairs_are_refused_for_a_ranking_project(tmp_path):
    project = ProjectFactory(schema={"arity": 3})
    errors = rejected(project, "bundle", write(tmp_path, [bundle_row(0)], "jsonl"))
    assert errors[0]["field"] == "comparisons"
    assert "use 'groups'" in errors[0]["message"]


def test_errors_past_the_cap_are_counted(project, tmp_path, monkeypatch):
    monkeypatch.setattr(rejection, "MAX_ERRORS", 3)
    rows = [{"id": f"p{i}", "text": ""} for i in range(10)]
    errors = rejected(project, "prompts", write(tmp_path, rows, "jsonl"))
    assert len(errors) == 4
    assert errors[-1] == {"line": None, "field": None, "message": "... and 7 more error(s) not shown."}


def test_a_file_that_is_not_json_lines_gets_one_clear_error(project, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('[{"text": "a JSON array"},\n{"text": "is not JSON Lines"}]\n')
    errors = rejected(project, "prompts", path)
    assert len(errors) == 1
    assert errors[0]["line"] is None
    assert errors[0]["message"].startswith("This is not a JSON Lines file: line 1 is not valid JSON")


def test_a_truncated_parquet_file_gets_one_clear_error(project, tmp_path):
    path = write(tmp_path, [{"text": f"Prompt {i}"} for i in range(100)], "parquet")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    errors = rejected(project, "prompts", path)
    assert len(errors) == 1
    assert errors[0]["message"].startswith("This is not a Parquet file, or it is truncated")


def test_a_binary_file_named_csv_gets_one_clear_error(project, tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_bytes(b"text\n\xff\xfe\x00\x01 not utf-8\n")
    errors = rejected(project, "prompts", path)
    assert len(errors) == 1
    assert errors[0]["line"] == 1 and errors[0]["message"].startswith("Not UTF-8 text: save the file as UTF-8")


def test_a_csv_file_missing_a_required_column_gets_one_clear_error(with_prompts, tmp_path):
    path = tmp_path / "candidates.csv"
    path.write_text("prompt_id,txt\nq0,Hello\n")
    errors = rejected(with_prompts, "candidates", path)
    assert errors == [
        {
            "line": None,
            "field": "txt",
            "message": "Unknown column(s) 'txt' for a candidates import; the columns are: "
            "id, prompt_id, text, mime_type, media, metadata, origin.",
        }
    ]


def test_an_empty_file_is_rejected(project, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    assert rejected(project, "prompts", path) == [{"line": None, "field": None, "message": "The file has no rows."}]


def test_a_text_project_needs_text_candidates(with_prompts, tmp_path):
    rows = [{"prompt_id": "q0", "text": "x", "mime_type": "image/png"}]
    errors = rejected(with_prompts, "candidates", write(tmp_path, rows, "jsonl"))
    assert errors[0]["message"] == "This is a text project: use text/plain or text/markdown."


def test_candidates_of_a_media_project_may_have_no_text(tmp_path):
    prompt = PromptFactory(project=ProjectFactory(modality=Modality.IMAGE), external_id="q")
    rows = [{"id": "img", "prompt_id": "q", "mime_type": "image/png"}]
    counts = import_file(project=prompt.project, kind="candidates", path=write(tmp_path, rows, "jsonl"))
    assert counts == {"candidates": {"created": 1, "unchanged": 0}}


# --- Gold comparisons ----------------------------------------------------------------------------------


def test_gold_comparisons_store_their_answer_with_candidate_keys(with_prompts, tmp_path):
    rows = [
        {"id": "g1", "prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "gold": {"winner": "q0-b"}},
        {"id": "g2", "prompt_id": "q1", "candidate_ids": ["q1-a", "q1-b"], "gold": {"tie": True}},
        {"id": "g3", "prompt_id": "q1", "candidate_ids": ["q1-b", "q1-a"], "gold": {"ranking": ["q1-a", "q1-b"]}},
    ]
    import_file(project=with_prompts, kind="comparisons", path=write(tmp_path, rows, "jsonl"))
    pk = {c.external_id: c.pk for c in Candidate.objects.filter(project=with_prompts)}
    gold = {c.external_id: c for c in Comparison.objects.filter(project=with_prompts)}
    assert gold["g1"].gold_answer == {"winner": pk["q0-b"]}
    assert gold["g2"].gold_answer == {"tie": True}
    assert gold["g3"].gold_answer == {"ranking": [pk["q1-a"], pk["q1-b"]]}
    assert all(c.is_gold and c.wanted == GOLD_WANTED for c in gold.values())
    counts = import_file(project=with_prompts, kind="comparisons", path=write(tmp_path, rows, "jsonl"))
    assert counts == {"comparisons": {"created": 0, "unchanged": 3}}


def test_a_gold_answer_must_fit_its_comparison(with_prompts, tmp_path):
    with_prompts.schema = {**with_prompts.schema, "allow_tie": False}
    with_prompts.save()
    rows = [
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "gold": {"winner": "q1-a"}},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "gold": {"tie": True}},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "gold": {"ranking": ["q0-a"]}},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "gold": {"best": "q0-a"}},
        {"prompt_id": "q0", "candidate_ids": ["q0-a", "q0-b"], "gold": {"winner": "q0-a"}, "wanted": 2},
    ]
    errors = rejected(with_prompts, "comparisons", write(tmp_path, rows, "jsonl"))
    assert [(e["line"], e["field"]) for e in errors] == [
        (1, "gold"),
        (2, "gold"),
        (3, "gold"),
        (4, "gold"),
        (5, "wanted"),
    ]


def test_a_bundle_can_list_gold_comparisons(project, tmp_path):
    row = bundle_row(
        0,
        comparisons=[["q0-a", "q0-b"], {"id": "gold-0", "candidate_ids": ["q0-c", "q0-a"], "gold": {"winner": "q0-a"}}],
    )
    import_file(project=project, kind="bundle", path=write(tmp_path, [row], "jsonl"))
    gold = Comparison.objects.get(external_id="gold-0")
    assert gold.is_gold and gold.gold_answer == {"winner": Candidate.objects.get(external_id="q0-a").pk}
    assert Comparison.objects.filter(project=project, is_gold=False).count() == 1


# --- Jobs --------------------------------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(rows: list[dict], name: str = "upload.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "".join(json.dumps(r) + "\n" for r in rows).encode())


def test_a_job_takes_its_format_from_the_file_name_and_waits_in_the_queue(media, project):
    job = import_job_create(project=project, kind="bundle", uploaded_file=upload([]), original_name="my file.JSONL")
    assert (job.status, job.file_format, job.original_name) == (ImportStatus.QUEUED, "jsonl", "my file.JSONL")
    assert job.file.name.endswith(".JSONL")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "rankings", "original_name": "a.jsonl"}, "kind"),
        ({"kind": "bundle", "original_name": "a.txt"}, "file_format"),
        ({"kind": "bundle", "original_name": "a.jsonl", "file_format": "xlsx"}, "file_format"),
        ({"kind": "bundle", "original_name": "a.jsonl", "options": {"colour": "red"}}, "options"),
    ],
)
def test_a_job_with_a_bad_kind_format_or_option_is_refused(media, project, kwargs, field):
    with pytest.raises(ImportRejected) as caught:
        import_job_create(project=project, uploaded_file=upload([]), **kwargs)
    assert caught.value.errors[0]["field"] == field
    assert not ImportJob.objects.exists()


def test_a_job_run_records_its_progress_and_counts(media, project):
    job = import_job_create(
        project=project, kind="bundle", uploaded_file=upload([bundle_row(i) for i in range(3)]), original_name="b.jsonl"
    )
    job = import_job_run(job_id=job.pk)
    assert job.status == ImportStatus.SUCCEEDED, job.errors
    assert (job.phase, job.rows_total, job.rows_done) == ("done", 3, 3)
    assert job.result["comparisons"] == {"created": 9, "unchanged": 0}
    assert job.started_at <= job.finished_at
    assert job.message.startswith("Imported.")


def test_a_job_reports_each_phase_as_it_goes(media, project, monkeypatch):
    monkeypatch.setattr(files, "BATCH_ROWS", 2)
    seen = []
    report = jobs._JobProgress.__call__

    def spy(self, phase, done, total):
        seen.append((phase, done, total))
        report(self, phase, done, total)

    monkeypatch.setattr(jobs._JobProgress, "__call__", spy)
    job = import_job_create(
        project=project, kind="bundle", uploaded_file=upload([bundle_row(i) for i in range(3)]), original_name="b.jsonl"
    )
    import_job_run(job_id=job.pk)
    assert seen == [
        ("reading", 0, None),
        ("validating", 2, 3),
        ("validating", 3, 3),
        ("writing", 0, 3),
        ("writing", 2, 3),
        ("writing", 3, 3),
    ]


def test_a_job_writes_each_phase_but_rows_done_within_a_phase_at_most_so_often(media, project, monkeypatch):
    monkeypatch.setattr(files, "BATCH_ROWS", 2)
    monkeypatch.setattr(jobs, "PROGRESS_EVERY_S", 3600)
    written = []
    report = jobs.job_report

    def spy(kind, job_id, attempt, **fields):
        written.append((fields["phase"], fields["rows_done"]))
        report(kind, job_id, attempt, **fields)

    monkeypatch.setattr(jobs, "job_report", spy)
    job = import_job_create(
        project=project, kind="bundle", uploaded_file=upload([bundle_row(i) for i in range(5)]), original_name="b.jsonl"
    )
    job = import_job_run(job_id=job.pk)
    assert written == [("reading", 0), ("validating", 2), ("writing", 0)]  # each a commit of its own
    assert (job.status, job.phase, job.rows_done, job.rows_total) == (ImportStatus.SUCCEEDED, "done", 5, 5)


def test_a_failed_job_keeps_its_errors_and_writes_nothing(media, project):
    rows = [bundle_row(0), bundle_row(1, candidates="not a list")]
    job = import_job_create(project=project, kind="bundle", uploaded_file=upload(rows), original_name="b.jsonl")
    job = import_job_run(job_id=job.pk)
    assert job.status == ImportStatus.FAILED
    assert job.phase == "validating"
    assert [(e["line"], e["field"]) for e in job.errors] == [(2, "candidates")]
    assert job.message.startswith("Nothing was imported: 1 error(s) on 1 row(s).")
    assert job.finished_at is not None
    assert not Prompt.objects.exists()


def test_a_job_runs_once_even_if_its_message_is_delivered_twice(media, project):
    job = import_job_create(
        project=project, kind="bundle", uploaded_file=upload([bundle_row(0)]), original_name="b.jsonl"
    )
    first = import_job_run(job_id=job.pk)
    second = import_job_run(job_id=job.pk)
    assert second.finished_at == first.finished_at
    assert second.result == first.result


def test_an_unexpected_error_fails_the_job_and_is_raised(media, project, monkeypatch):
    job = import_job_create(
        project=project, kind="bundle", uploaded_file=upload([bundle_row(0)]), original_name="b.jsonl"
    )

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writing, "_plan_write", broken)
    with pytest.raises(RuntimeError):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    expected = (
        "The import stopped on an unexpected error while writing (RuntimeError: disk on fire); nothing was imported."
    )
    assert job.message == expected


def test_a_database_error_on_a_job_is_told_in_our_words_not_the_databases(media, project, monkeypatch):
    from django.db import DataError

    job = import_job_create(
        project=project, kind="bundle", uploaded_file=upload([bundle_row(0)]), original_name="b.jsonl"
    )

    def refused(*args, **kwargs):
        raise DataError('invalid byte sequence for encoding "UTF8": 0x00 in column "text" of "annotation_prompt"')

    monkeypatch.setattr(writing, "_plan_write", refused)
    with pytest.raises(DataError):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED and job.phase == "writing"
    expected = (
        "The import stopped on an unexpected error while writing (a database error; the details are in the worker's "
        "log); nothing was imported."
    )
    assert job.message == expected and "annotation_prompt" not in job.message


def test_a_text_may_hold_any_character_the_database_stores(project, tmp_path):
    tricky = 'Tab\there, newline\nthere, back\\slash, quote", {brace}, \\N, émoji 🙂'
    row = {"id": "q\t1", "text": tricky, "metadata": {"note": tricky}, "candidates": [{"id": "c\\1", "text": tricky}]}
    import_file(project=project, kind="bundle", path=write(tmp_path, [row], "jsonl"))
    prompt = Prompt.objects.get(project=project)
    assert (prompt.external_id, prompt.text, prompt.metadata) == ("q\t1", tricky, {"note": tricky})
    assert Candidate.objects.get(project=project).text == tricky


def test_stream_text_of_many_batches_is_imported_whole(project, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "BATCH_ROWS", 7)
    rows = [bundle_row(i) for i in range(30)]
    counts = import_file(project=project, kind="bundle", path=write(tmp_path, rows, "jsonl"))
    assert counts["comparisons"]["created"] == 90
    assert Comparison.objects.filter(project=project).count() == 90
    ids = list(Comparison.objects.filter(project=project).order_by("pk").values_list("prompt__external_id", flat=True))
    assert ids == [f"q{i}" for i in range(30) for _ in range(3)]


def test_an_upload_may_be_any_file_like_object(media, project):
    job = import_job_create(
        project=project, kind="prompts", uploaded_file=io.BytesIO(b'{"text": "Hi"}\n'), original_name="p.jsonl"
    )
    assert import_job_run(job_id=job.pk).status == ImportStatus.SUCCEEDED


# --- The import_data command ------------------------------------------------------------------------------


def test_the_command_imports_a_file_and_prints_the_counts(project, tmp_path):
    out = io.StringIO()
    path = write(tmp_path, [bundle_row(0)], "jsonl")
    call_command("import_data", path, project=project.pk, kind="bundle", stdout=out, verbosity=0)
    assert "comparisons: 3 created, 0 unchanged" in out.getvalue()


def test_the_command_prints_every_row_error_and_fails(project, tmp_path):
    err = io.StringIO()
    path = write(tmp_path, [{"text": ""}, {"text": "fine"}, {"text": 5}], "jsonl")
    with pytest.raises(CommandError, match="Nothing was imported: 2 error"):
        call_command("import_data", path, project=project.pk, kind="prompts", stderr=err, verbosity=0)
    assert err.getvalue().splitlines() == [
        "line 1 [text]: Required: the text must not be empty.",
        "line 3 [text]: Must be a string, not a number.",
    ]
    assert not Prompt.objects.exists()


def test_text_the_database_cannot_store_is_a_row_error(project, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "nul \\u0000 here"}\n{"text": "lone \\ud800 surrogate"}\n{"text": "fine"}\n')
    errors = rejected(project, "prompts", path)
    assert [(e["line"], e["field"]) for e in errors] == [(1, "text"), (2, "text")]


def test_a_lone_surrogate_is_named_as_such_not_as_bad_json(project, tmp_path):
    """The fast JSON reader refuses lone surrogates; the row check's own message must still be the one shown."""
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "lone \\udc00 surrogate"}\n')
    (error,) = rejected(project, "prompts", path)
    assert (error["line"], error["field"]) == (2, "text")
    assert "lone surrogate" in error["message"]


def test_a_bad_json_line_is_named_by_its_line(project, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text": "three",}\n{"text": NaN}\n{"text": "five"}\n')
    errors = rejected(project, "prompts", path)
    assert [e["line"] for e in errors] == [3, 4]
    assert errors[0]["message"].startswith("Not valid JSON: Expecting property name enclosed in double quotes")
    assert errors[1]["message"] == "Must be a string, not a number."  # NaN is read, as json reads it


def test_integers_beyond_64_bits_are_kept_whole(project, tmp_path):
    big = 2**64 + 1  # a fast JSON reader would make it a float
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": big, "text": "big", "metadata": {"n": big, "m": -(2**70)}}) + "\n")
    import_file(project=project, kind="prompts", path=str(path))
    prompt = Prompt.objects.get(project=project)
    assert (prompt.external_id, prompt.metadata) == (str(big), {"n": big, "m": -(2**70)})


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ANALYZE is Postgres's")
@pytest.mark.django_db(transaction=True)
def test_an_import_never_analyzes_in_the_request(tmp_path, monkeypatch):
    monkeypatch.setattr(planner_statistics, "ANALYZE_THRESHOLD_ROWS", 0)
    project = ProjectFactory()
    with CaptureQueriesContext(connection) as queries:
        counts = import_file(project=project, kind="bundle", path=write(tmp_path, [bundle_row(0)], "jsonl"))
    assert counts["comparisons"]["created"] == 3
    assert [q["sql"] for q in queries if "ANALYZE" in q["sql"]] == []


def _statistics(table: str) -> tuple[int, float]:
    """How many times ``table`` was analyzed, and the rows its statistics hold."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.analyze_count, c.reltuples FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.relname = %s",
            [table],
        )
        return cursor.fetchone()


def _beat_refresh() -> list[str]:
    """The beat's statistics task, as it runs a while after the imports (their counts sent by then)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # a backend sends its counts at most once a second
    analyzed_before = {table: _statistics(table)[0] for table in ("annotation_prompt", "annotation_comparison")}
    planner_statistics_refresh_task()
    return [table for table, count in analyzed_before.items() if _statistics(table)[0] > count]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ANALYZE is Postgres's")
@pytest.mark.django_db(transaction=True)  # committed imports, counted by Postgres as they are in production
def test_the_beat_analyzes_a_table_once_it_grew_by_a_tenth_and_leaves_the_others(tmp_path):
    project = ProjectFactory()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_prompt, annotation_comparison")  # statistics of no rows, no change since
    assert _beat_refresh() == []

    def import_prompts(first: int, count: int) -> None:
        rows = [{"id": f"p{i}", "text": f"Prompt {i}"} for i in range(first, first + count)]
        import_file(project=project, kind="prompts", path=write(tmp_path, rows, "jsonl", name=f"p{first}"))

    import_prompts(0, 1000)
    assert _beat_refresh() == ["annotation_prompt"], "an empty table's first rows are analyzed, nothing else"
    assert _statistics("annotation_prompt")[1] == 1000
    # The threshold at 1,000 rows: 50 + 10 % = 150 changed rows, i.e. the fifth import of 30 rows.
    for i in range(4):
        import_prompts(1000 + 30 * i, 30)
        assert _beat_refresh() == [], f"analyzed after import {i + 1} of 30 rows"
    import_prompts(1120, 30)
    assert _beat_refresh() == ["annotation_prompt"]
    assert _statistics("annotation_prompt")[1] == 1150


# --- Outside a transaction (the worker, the command): on Postgres, validation and COPY overlap ----------


@pytest.mark.django_db(transaction=True)
def test_an_import_outside_a_transaction_writes_every_batch_once(tmp_path, monkeypatch):
    project = ProjectFactory()
    monkeypatch.setattr(files, "BATCH_ROWS", 2)
    path = write(tmp_path, [bundle_row(i) for i in range(5)], "jsonl")
    counts = import_file(project=project, kind="bundle", path=path)
    assert counts["comparisons"] == {"created": 15, "unchanged": 0}
    pk = dict(Candidate.objects.filter(project=project).values_list("external_id", "pk"))
    got = Comparison.objects.filter(project=project).order_by("pk").values_list("prompt__external_id", "candidate_ids")
    assert list(got) == [(f"q{i}", [pk[f"q{i}-{a}"], pk[f"q{i}-{b}"]]) for i in range(5) for a, b in ("ab", "ac", "bc")]
    # Again, now that the project has rows to look up: nothing new.
    again = import_file(project=project, kind="bundle", path=path)
    assert again["comparisons"] == {"created": 0, "unchanged": 15}
    assert Comparison.objects.filter(project=project).count() == 15


@pytest.mark.django_db(transaction=True)
def test_an_import_outside_a_transaction_is_all_or_nothing(tmp_path, monkeypatch):
    """The bad rows come after batches that Postgres has already written: every
    error is still reported, and nothing stays."""
    project = ProjectFactory()
    monkeypatch.setattr(files, "BATCH_ROWS", 2)
    rows = [bundle_row(i) for i in range(5)] + [{"id": "q9"}, bundle_row(6), bundle_row(0)]
    errors = rejected(project, "bundle", write(tmp_path, rows, "jsonl"))
    assert (6, "text") in [(e["line"], e["field"]) for e in errors]
    assert (8, "id") in [(e["line"], e["field"]) for e in errors]  # q0 again
    assert {e["line"] for e in errors} == {6, 8}
    assert (Prompt.objects.count(), Candidate.objects.count(), Comparison.objects.count()) == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_an_import_outside_a_transaction_leaves_the_thread_switch_interval_as_it_was(tmp_path):
    """The overlapped import shortens it while it runs; a worker process goes on with the usual one."""
    project = ProjectFactory()
    before = sys.getswitchinterval()
    import_file(project=project, kind="bundle", path=write(tmp_path, [bundle_row(0)], "jsonl"))
    assert sys.getswitchinterval() == before
    rejected(project, "bundle", write(tmp_path, [bundle_row(1), {"id": "q9"}], "jsonl", name="bad"))
    assert sys.getswitchinterval() == before


@pytest.mark.django_db(transaction=True)
def test_a_write_that_fails_outside_a_transaction_leaves_nothing(tmp_path, monkeypatch):
    project = ProjectFactory()
    monkeypatch.setattr(files, "BATCH_ROWS", 2)
    calls = []
    real = writing._batch_send

    def fail_on_the_second(inserts):
        calls.append(inserts)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        real(inserts)

    monkeypatch.setattr(writing, "_batch_send", fail_on_the_second)
    monkeypatch.setattr(jobs, "_batch_send", fail_on_the_second)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_file(project=project, kind="bundle", path=write(tmp_path, [bundle_row(i) for i in range(5)], "jsonl"))
    assert (Prompt.objects.count(), Candidate.objects.count(), Comparison.objects.count()) == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_one_batch_job_outside_a_transaction_opens_no_second_connection(media, monkeypatch):
    project = ProjectFactory()
    opened = []
    create = jobs.connections.create_connection

    def counted(alias):
        side = create(alias)
        connect = side.connect

        def connect_counted():
            opened.append(alias)
            connect()

        side.connect = connect_counted
        return side

    monkeypatch.setattr(jobs.connections, "create_connection", counted)
    rows = [bundle_row(i) for i in range(5)]
    job = import_job_create(project=project, kind="bundle", uploaded_file=upload(rows), original_name="b.jsonl")
    job = import_job_run(job_id=job.pk)
    assert (job.status, job.rows_done) == (ImportStatus.SUCCEEDED, 5)
    assert opened == []  # keys drawn, and progress written, through the importing connection only


@pytest.mark.django_db(transaction=True)
def test_a_job_outside_a_transaction_reports_progress_up_to_every_row(media, monkeypatch):
    project = ProjectFactory()
    monkeypatch.setattr(files, "BATCH_ROWS", 2)
    seen = []
    report = jobs._JobProgress.__call__

    def spy(self, phase, done, total):
        seen.append((phase, done, total))
        report(self, phase, done, total)

    monkeypatch.setattr(jobs._JobProgress, "__call__", spy)
    rows = [bundle_row(i) for i in range(5)]
    job = import_job_create(project=project, kind="bundle", uploaded_file=upload(rows), original_name="b.jsonl")
    job = import_job_run(job_id=job.pk)
    assert job.status == ImportStatus.SUCCEEDED, job.errors
    assert (job.phase, job.rows_done, job.rows_total) == ("done", 5, 5)
    assert seen[0] == ("reading", 0, None)
    writing = [done for phase, done, _ in seen if phase == "writing"]
    assert writing[0] == 0 and writing[-1] == 5 and writing == sorted(writing)
