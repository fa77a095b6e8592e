"""Exports: every shape in every format, the dataset card's numbers, filters, chunking, media, the API."""

import io
import json
import zipfile
from collections import Counter

import pytest
from django.core.files.base import ContentFile

from annotation.exporters import (
    FORMATS,
    SHAPES,
    ExportInvalid,
    card_numbers,
    export_job_run,
    export_request_parse,
    export_to_folder,
)
from annotation.exporters import core as export_core
from annotation.exporters import source as export_source
from annotation.exporters.filters import ExportFilter
from annotation.models import Candidate, ExportJob, Judgment, Membership, Role, SpanMark

from ..factories import UserFactory
from .export_read import card, read_rows
from .export_world import judged_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return judged_project()


def export(world, tmp_path, shape="judgments", file_format="jsonl", **kwargs):
    request = export_request_parse(shape=shape, file_format=file_format, **kwargs)
    folder = tmp_path / f"{shape}-{file_format}-{len(list(tmp_path.iterdir()))}"
    export_to_folder(world.project, request, folder)
    return read_rows(folder, file_format), card_numbers(card(folder)), folder


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_in_each_format_has_the_rows_its_card_counts(world, tmp_path, shape, file_format):
    rows, numbers, folder = export(world, tmp_path, shape, file_format)
    # 13 non-gold judgments on 7 comparisons: 10 pairwise winners (10 pairs), a tie (dropped), 2 rankings of 3.
    expected_rows = {"pairs": 10 + 2 * 3, "rankings": 13, "judgments": 13, "consensus": 7}[shape]
    assert len(rows) == numbers["rows"] == expected_rows
    assert numbers["judgments"] == 13 and numbers["comparisons"] == 7 and numbers["prompts"] == 7
    assert (folder / "README.md").read_text().startswith("---\npretty_name:")


def test_the_cards_numbers_match_the_data(world, tmp_path):
    rows, numbers, _ = export(world, tmp_path, "judgments", "jsonl")
    answers = Counter("tie" if r["tie"] else "ranking" if r["ranking"] else "winner" for r in rows)
    assert numbers["answers"] == dict(answers)
    assert numbers["judgments_per_annotator"] == dict(Counter(r["annotator"] for r in rows))
    assert numbers["comparisons"] == len({r["comparison_id"] for r in rows})
    assert numbers["prompts"] == len({r["prompt_id"] for r in rows})
    assert numbers["splits"] == dict(Counter(r["split"] for r in rows))
    winners = Counter(
        str([c["id"] for c in r["candidates"]].index(r["winner"]) + 1) for r in rows if r["winner"] is not None
    )
    assert numbers["winner_position"] == dict(winners)
    assert numbers["strength"] == dict(Counter("none" if r["strength"] is None else str(r["strength"]) for r in rows))
    consensus, _, _ = export(world, tmp_path, "consensus", "jsonl")
    agreements = [r["agreement"] for r in consensus if r["agreement"] is not None]
    assert numbers["agreement"]["comparisons_with_agreement"] == len(agreements) == 4
    assert numbers["agreement"]["mean"] == pytest.approx(sum(agreements) / len(agreements))
    assert numbers["sources"][0] == {"source": "unit tests", "license": "CC-BY-4.0", "comparisons": 6}


def test_the_card_records_the_exact_filter(world, tmp_path):
    _, _, folder = export(world, tmp_path, filters={"annotators": "anna,bob", "min_agreement": 0.5, "gold": "include"})
    text = card(folder)
    recorded = json.loads(text.split("## Filter", 1)[1].split("```json", 1)[1].split("```", 1)[0])
    assert recorded["filters"]["annotators"] == ["anna", "bob"]
    assert recorded["filters"]["min_agreement"] == 0.5 and recorded["filters"]["gold"] == "include"


def test_agreement_and_consensus_per_comparison(world, tmp_path):
    rows, _, _ = export(world, tmp_path, "consensus", "jsonl")
    by_id = {r["comparison_id"]: r for r in rows}
    unanimous, two_to_one, split, single, tie = (by_id[c.external_id] for c in world.pairwise[:5])
    assert unanimous["agreement"] == 1.0 and unanimous["winner"] == unanimous["candidate_ids"][0]
    assert two_to_one["agreement"] == pytest.approx(2 / 3) and two_to_one["n_judgments"] == 3
    assert split["agreement"] == 0.5 and split["tie"] is True and split["winner"] is None
    assert single["agreement"] is None and single["winner"] == single["candidate_ids"][1]
    assert tie["tie"] is True
    ranked = by_id[world.ranked.external_id]
    # Rankings [2, 0, 1] and [2, 1, 0]: candidate 2 is first for both; 0 and 1 split.
    assert ranked["consensus_ranking"][0] == ranked["candidate_ids"][2]
    assert ranked["agreement"] == pytest.approx(5 / 6)


def test_pairs_follow_the_training_rules_with_strength_as_margin(world, tmp_path):
    rows, _, _ = export(world, tmp_path, "pairs", "jsonl")
    first = [r for r in rows if r["comparison_id"] == world.pairwise[0].external_id]
    assert len(first) == 3 and all(r["margin"] == 3.0 and r["chosen"].startswith("Answer A0") for r in first)
    assert first[0]["prompt"] == "system: Be brief.\nuser: " + world.pairwise[0].prompt.text
    ranked = [r for r in rows if r["comparison_id"] == world.ranked.external_id]
    assert len(ranked) == 6 and all(r["margin"] == 0.0 for r in ranked)
    soft, _, _ = export(world, tmp_path, "pairs", "jsonl", options={"ties": "soft"})
    assert [r["label"] for r in soft].count(0.5) == 1
    chat, _, _ = export(world, tmp_path, "pairs", "jsonl", options={"form": "conversational", "margin_scale": 0.5})
    assert chat[0]["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": world.pairwise[0].prompt.text},
    ]
    assert chat[0]["chosen"] == [{"role": "assistant", "content": first[0]["chosen"]}] and chat[0]["margin"] == 1.5


def test_rankings_rank_what_the_answer_orders(world, tmp_path):
    rows, _, _ = export(world, tmp_path, "rankings", "jsonl")
    ranked = [r for r in rows if r["comparison_id"] == world.ranked.external_id]
    assert all(r["ranks"] == [1, 2, 3] for r in ranked)
    tie = next(r for r in rows if r["comparison_id"] == world.pairwise[4].external_id)
    assert tie["ranks"] == [1, 1]


def test_raw_judgments_carry_spans_ratings_order_time_round_and_model_versions(world, tmp_path):
    rows, _, _ = export(world, tmp_path, "judgments", "parquet")
    row = next(r for r in rows if r["comparison_id"] == world.pairwise[0].external_id)
    loser = row["candidates"][1]["id"]
    assert row["spans"] == [
        {"candidate": loser, "start": 0.0, "end": 6.0, "box": None, "category": "incorrect", "note": ""}
    ]
    assert json.loads(row["ratings"]) == {row["candidates"][0]["id"]: {"helpful": 4}, loser: {"helpful": 2}}
    assert row["shown_order"] == [loser, row["candidates"][0]["id"]] and row["time_spent_ms"] == 1500
    ranked = next(r for r in rows if r["comparison_id"] == world.ranked.external_id)
    assert ranked["round"] == "7" and {c["model_version"] for c in ranked["candidates"]} == {"3"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"annotators": ["cara"]}, {("cara", 0), ("cara", 1), ("cara", 3), ("cara", "ranked")}),
        ({"date_from": "2026-03-09", "date_to": "2026-03-11T00:00:00Z"}, {("bob", 5), ("anna", "ranked")}),
        ({"split": "eval"}, {("bob", 5)}),
        ({"rounds": ["7"]}, {("anna", "ranked"), ("cara", "ranked")}),
        ({"min_agreement": 0.8}, {("anna", 0), ("bob", 0), ("cara", 0), ("anna", "ranked"), ("cara", "ranked")}),
        ({"gold": "only"}, {("bob", "gold")}),
    ],
)
def test_filters_select_the_judgments_they_name(world, tmp_path, filters, expected):
    names = {c.external_id: i for i, c in enumerate(world.pairwise)}
    names[world.ranked.external_id], names[world.gold.external_id] = "ranked", "gold"
    rows, _, _ = export(world, tmp_path, "judgments", "jsonl", filters=filters)
    assert {(r["annotator"], names[r["comparison_id"]]) for r in rows} == expected


def test_gold_is_left_out_unless_asked_for(world, tmp_path):
    left_out, _, _ = export(world, tmp_path)
    included, numbers, _ = export(world, tmp_path, filters={"gold": "include"})
    assert world.gold.external_id not in {r["comparison_id"] for r in left_out}
    assert len(included) == len(left_out) + 1 and numbers["gold_judgments"] == 1


def test_bad_arguments_are_named():
    with pytest.raises(ExportInvalid) as caught:
        export_request_parse(
            shape="triples", file_format="xlsx", filters={"split": "test", "min_agreement": 2, "colour": 1}
        )
    assert set(caught.value.errors) == {"shape", "file_format", "split", "min_agreement", "filters"}


def test_chunk_boundaries_inside_a_comparison_change_nothing(world, tmp_path, monkeypatch):
    whole, _, _ = export(world, tmp_path, "consensus", "jsonl")
    monkeypatch.setattr(export_source, "CHUNK_ROWS", 2)
    chunked, _, _ = export(world, tmp_path, "consensus", "jsonl")
    assert chunked == whole


@pytest.mark.parametrize("chunk_rows", [1, 3])
@pytest.mark.parametrize("shape", ["judgments", "pairs"])
def test_per_comparison_decoding_and_cached_pairs_survive_any_chunking(world, tmp_path, monkeypatch, shape, chunk_rows):
    # A comparison's columns are decoded once and shared by its judgments, and each judgment's pairs are
    # expanded once: a chunk cut between two judgments of a comparison must not change a row.
    options = {"ties": "soft", "margin_scale": 0.5} if shape == "pairs" else None
    whole, _, _ = export(world, tmp_path, shape, "jsonl", options=options)
    monkeypatch.setattr(export_source, "CHUNK_ROWS", chunk_rows)
    chunked, _, _ = export(world, tmp_path, shape, "jsonl", options=options)
    assert chunked == whole
    assert len({row["comparison_id"] for row in whole}) < len(whole)  # some comparison has several rows


@pytest.mark.parametrize(
    "filters",
    [
        {"gold": "only"},
        {"gold": "include", "split": "eval"},
        {"rounds": ["7", "none"], "annotators": ["anna", "bob"]},
        {"split": "train", "date_from": "2026-03-03", "date_to": "2026-03-11"},
        {"rounds": ["none"], "gold": "include", "min_agreement": 0.6},
    ],
)
def test_filters_on_the_comparison_drop_whole_chunks_without_changing_the_export(world, tmp_path, monkeypatch, filters):
    # The judgments are read filtered on their own columns (time, annotators), then each chunk's comparisons
    # filtered on theirs (rounds, split, gold): a chunk whose judgments all go changes nothing, and together
    # they keep exactly the judgments the filter selects.
    whole, numbers, _ = export(world, tmp_path, "judgments", "jsonl", filters=filters)
    selected = ExportFilter.parse(filters).judgments(world.project)
    if "min_agreement" not in filters:
        assert {row["judgment_id"] for row in whole} == set(selected.values_list("pk", flat=True))
    assert whole
    # Spans are read by a range of judgment ids when they lie close together: those of judgments the filter
    # leaves out, inside that range, must not turn up.
    marked = Counter(SpanMark.objects.values_list("judgment_id", flat=True))
    assert {row["judgment_id"]: len(row["spans"]) for row in whole} == {
        row["judgment_id"]: marked[row["judgment_id"]] for row in whole
    }
    monkeypatch.setattr(export_source, "CHUNK_ROWS", 1)
    chunked, chunked_numbers, _ = export(world, tmp_path, "judgments", "jsonl", filters=filters)
    assert chunked == whole and chunked_numbers == numbers


@pytest.mark.parametrize("spread", [export_source.SPANS_RANGE_SPREAD, 0])
def test_spans_come_in_the_order_they_were_marked_whatever_the_chunking(world, tmp_path, monkeypatch, spread):
    # spread 0: every chunk's spans are probed judgment by judgment, never read as one range of ids.
    monkeypatch.setattr(export_source, "SPANS_RANGE_SPREAD", spread)
    judgment = Judgment.objects.get(comparison=world.pairwise[2], annotator__username="bob")
    ids = world.pairwise[2].candidate_ids
    for candidate_id, start, end, category in [(ids[1], 3.25, 7.5, "wrong"), (ids[0], 0.1, 0.3, "style")]:
        SpanMark.objects.create(judgment=judgment, candidate_id=candidate_id, start=start, end=end, category=category)
    SpanMark.objects.create(judgment=judgment, candidate_id=ids[0], box=[0.1, 0.2, 0.5, 0.25], category="image")
    whole, _, _ = export(world, tmp_path)
    row = next(r for r in whole if r["judgment_id"] == judgment.pk)
    names = {ids[0]: row["candidates"][0]["id"], ids[1]: row["candidates"][1]["id"]}
    assert [(s["candidate"], s["start"], s["end"], s["box"], s["category"]) for s in row["spans"]] == [
        (names[ids[1]], 3.25, 7.5, None, "wrong"),
        (names[ids[0]], 0.1, 0.3, None, "style"),
        (names[ids[0]], None, None, [0.1, 0.2, 0.5, 0.25], "image"),
    ]
    assert sum(len(r["spans"]) for r in whole) == 3 + 3  # and the unanimous comparison's three
    monkeypatch.setattr(export_source, "CHUNK_ROWS", 1)
    chunked, _, _ = export(world, tmp_path)
    assert chunked == whole


def test_media_are_packed_beside_the_data_or_referenced_by_url(world, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media-root"
    settings.MEDIA_URL = "/media/"
    image = Candidate.objects.get(pk=world.pairwise[3].candidate_ids[0])
    image.media.save("cat.png", ContentFile(b"\x89PNG fake image bytes"))
    image.mime_type = "image/png"
    image.save()
    rows, _, folder = export(world, tmp_path, "pairs", "jsonl", media="pack")
    pair = next(r for r in rows if r["comparison_id"] == world.pairwise[3].external_id)
    assert pair["rejected_media"] == f"media/{image.media.name}"
    assert (folder / pair["rejected_media"]).read_bytes() == b"\x89PNG fake image bytes"
    by_url, _, _ = export(world, tmp_path, "pairs", "jsonl")
    pair = next(r for r in by_url if r["comparison_id"] == world.pairwise[3].external_id)
    assert pair["rejected_media"] == f"/media/{image.media.name}"


# --- API -------------------------------------------------------------------------------------------------------


@pytest.fixture
def researcher_of(world):
    user = UserFactory(username="rita")
    Membership.objects.create(project=world.project, user=user, role=Role.RESEARCHER)
    return user


def test_a_direct_download_streams_a_zip_with_the_data_and_its_card(world, api, researcher_of):
    response = api.as_user(researcher_of).get(
        f"/api/v1/projects/{world.project.pk}/exports/stream/?shape=pairs&file_format=parquet&annotators=anna"
    )
    assert response.status_code == 200 and response.streaming
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["README.md", "data.parquet"]
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(archive.read("data.parquet"))).to_pylist()
    assert rows and {r["annotator"] for r in rows} == {"anna"}
    assert card_numbers(archive.read("README.md").decode())["rows"] == len(rows)


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_a_streamed_text_download_comes_in_small_chunks_and_matches_the_job_export(
    world, api, researcher_of, tmp_path, monkeypatch, file_format
):
    # A web worker holds one batch at a time: with batches of 3 rows, the 13 judgments arrive in several chunks.
    monkeypatch.setattr(export_core, "STREAM_BATCH_ROWS", 3)
    response = api.as_user(researcher_of).get(
        f"/api/v1/projects/{world.project.pk}/exports/stream/?shape=judgments&file_format={file_format}"
    )
    chunks = list(response.streaming_content)
    assert len(chunks) >= 5
    streamed = tmp_path / "streamed"
    zipfile.ZipFile(io.BytesIO(b"".join(chunks))).extractall(streamed)
    rows, numbers, _ = export(world, tmp_path, "judgments", file_format)
    assert read_rows(streamed, file_format) == rows
    assert card_numbers(card(streamed)) == numbers


def test_a_bad_stream_request_is_a_400_naming_the_field(world, api, researcher_of):
    response = api.as_user(researcher_of).get(
        f"/api/v1/projects/{world.project.pk}/exports/stream/?shape=pairs&file_format=xls"
    )
    assert response.status_code == 400 and "file_format" in response.json()["errors"]


def test_an_export_job_reports_progress_and_gives_a_download_link(world, api, researcher_of, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client = api.as_user(researcher_of)
    created = client.post(
        f"/api/v1/projects/{world.project.pk}/exports/",
        {"shape": "judgments", "file_format": "hf", "filters": {"split": "train"}},
        format="json",
    )
    assert created.status_code == 202, created.json()
    job = created.json()
    assert job["status"] == "queued" and job["rows_total"] == 12 and job["download_url"] is None
    export_job_run(job_id=job["id"])  # what the worker's task does
    done = client.get(f"/api/v1/exports/{job['id']}/").json()
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["numbers"]["judgments"] == 12
    download = client.get(done["download_url"])
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert {"README.md", "data-00000-of-00001.arrow", "state.json", "dataset_info.json"} <= set(archive.namelist())
    assert [j["id"] for j in client.get(f"/api/v1/projects/{world.project.pk}/exports/").json()] == [job["id"]]
    assert ExportJob.objects.get(pk=job["id"]).size_bytes > 0


def test_an_unfinished_export_has_nothing_to_download(world, api, researcher_of):
    job = ExportJob.objects.create(project=world.project, shape="pairs", file_format="csv")
    response = api.as_user(researcher_of).get(f"/api/v1/exports/{job.pk}/download/")
    assert response.status_code == 409 and "queued" in response.json()["message"]


def test_the_management_command_writes_the_export_and_prints_its_counts(world, tmp_path, capsys):
    from django.core.management import call_command

    call_command(
        "export_data",
        str(tmp_path / "out"),
        project=world.project.pk,
        shape="pairs",
        file_format="csv",
        annotators="anna",
        form="standard",
    )
    printed = json.loads(capsys.readouterr().out)
    rows = read_rows(tmp_path / "out", "csv")
    assert printed["rows"] == len(rows) > 0 and {r["annotator"] for r in rows} == {"anna"}
    assert card_numbers(card(tmp_path / "out"))["rows"] == len(rows)


@pytest.mark.parametrize("date", ["2026-13-01", "2026-02-30T10:00:00", "yesterday"])
def test_an_impossible_date_is_a_named_error_not_a_crash(date):
    with pytest.raises(ExportInvalid) as caught:
        export_request_parse(shape="pairs", file_format="csv", filters={"date_from": date})
    assert set(caught.value.errors) == {"date_from"}


def test_an_overlong_round_id_matches_nothing(world, tmp_path):
    rows, _, _ = export(world, tmp_path, filters={"rounds": ["9" * 40]})
    assert rows == []


def test_options_or_filters_that_are_not_objects_are_named():
    with pytest.raises(ExportInvalid) as caught:
        export_request_parse(shape="pairs", file_format="csv", options="x", filters=["y"])
    assert {"options", "filters"} <= set(caught.value.errors)


def test_a_pairs_card_names_only_its_own_columns_and_says_what_happens_to_ties(world, tmp_path):
    _, _, folder = export(world, tmp_path, "pairs", "jsonl")
    text = card(folder)
    assert "`ratings`" not in text and "`origin`" not in text  # the pairs shape has neither column
    assert "Ties are dropped (they give no pair)." in text and "a tie is drop" not in text
    _, _, folder = export(world, tmp_path, "pairs", "jsonl", options={"ties": "soft"})
    assert "Ties are kept as soft labels" in card(folder)
    _, _, folder = export(world, tmp_path, "judgments", "jsonl")
    assert "`ratings` and candidates' `origin` are JSON text." in card(folder)


def test_the_cards_front_matter_names_the_licence_as_the_hub_spells_it(world, tmp_path):
    _, _, folder = export(world, tmp_path, "pairs", "jsonl")
    assert 'license: "cc-by-4.0"' in card(folder).split("---", 2)[1].splitlines()
