"""Fine-grained span rewards inside rounds: a project whose schema has span categories gets a ``span`` version
beside the reward version, evaluated on the held-out prompts, and researchers read per-segment scores from it."""

import random

import pytest

from annotation.models import Comparison, Judgment, Membership, Prompt, Role, SpanMark, Split
from tests.factories import CandidateFactory, PromptFactory, UserFactory
from tests.training.synthetic import CUE, FILLER_A, MARKER
from training import rounds
from training.judgments_source import span_examples
from training.ml.span_rewards import load_span_reward_model, segment_sentences
from training.models import ModelKind, ModelVersion, RoundStatus
from training.registry import artifact_location

from .conftest import fast_settings

pytestmark = pytest.mark.django_db

CATEGORIES = [
    {"key": "toxic", "label": "Toxic", "color": "#d62728"},
    {"key": "off_topic", "label": "Off topic", "color": "#1f77b4"},
]


def marked_text(rng: random.Random) -> tuple[str, list[tuple[int, int, str]]]:
    """2-4 sentences of filler; a sentence with MARKER has the word marked "toxic", one with CUE is marked
    "off_topic" as a whole. Returns the text and its (start, end, category) marks in code points."""
    parts, marks, pos = [], [], 0
    for _ in range(rng.randint(2, 4)):
        words = [rng.choice(FILLER_A) for _ in range(rng.randint(3, 6))]
        kind = rng.choice(["clean", "clean", "toxic", "off_topic"])
        if kind == "toxic":
            words.insert(rng.randint(0, len(words)), MARKER)
        elif kind == "off_topic":
            words.insert(rng.randint(0, len(words)), CUE)
        sentence = " ".join(words) + "."
        if kind == "toxic":
            at = sentence.index(MARKER)
            marks.append((pos + at, pos + at + len(MARKER), "toxic"))
        elif kind == "off_topic":
            marks.append((pos, pos + len(sentence), "off_topic"))
        parts.append(sentence)
        pos += len(sentence) + 1
    return " ".join(parts), marks


def add_marked_judgments(project, n: int, *, seed: int = 3, gold: bool = False) -> list[Judgment]:
    """``n`` pairwise judgments whose annotator marked every error span on both candidates; the candidate with
    fewer marks wins (ties broken by the first)."""
    rng = random.Random(seed)
    annotator, _ = Membership.objects.get_or_create(
        project=project,
        user=UserFactory(username=f"marker-{project.pk}-{seed}-{int(gold)}"),
        defaults={"role": Role.ANNOTATOR},
    )
    out = []
    for i in range(n):
        # Distinct prompts: the split groups prompts that open the same way.
        prompt = PromptFactory(project=project, text=f"q prompt {seed}-{i}")
        drafts = [marked_text(rng) for _ in range(2)]
        candidates = [CandidateFactory(prompt=prompt, text=text) for text, _ in drafts]
        winner = candidates[0] if len(drafts[0][1]) <= len(drafts[1][1]) else candidates[1]
        comparison = Comparison.objects.create(
            project=project,
            prompt=prompt,
            external_id=f"span-{seed}-{int(gold)}-{i}",
            candidate_ids=[c.pk for c in candidates],
            wanted=1,
            judged=1,
            status="done",
            is_gold=gold,
            gold_answer={"winner": winner.pk} if gold else None,
        )
        judgment = Judgment.objects.create(
            project=project,
            comparison=comparison,
            annotator=annotator.user,
            winner=winner,
            idempotency_key=f"span-{comparison.pk}",
        )
        SpanMark.objects.bulk_create(
            SpanMark(judgment=judgment, candidate=candidate, start=start, end=end, category=category)
            for candidate, (_, marks) in zip(candidates, drafts, strict=True)
            for start, end, category in marks
        )
        out.append(judgment)
    return out


def span_settings(backbone: str, **extra) -> dict:
    return fast_settings(backbone, span_epochs=8, span_learning_rate=3e-3, max_length=64, **extra)


@pytest.fixture
def span_project(project, tiny_backbone):
    project.schema = {**project.schema, "span_categories": CATEGORIES}
    project.training_settings = span_settings(tiny_backbone)
    project.save(update_fields=["schema", "training_settings"])
    return project


def run_round(project):
    started = rounds.round_start(project=project, enqueue=False)
    return rounds.round_run(round_id=started.pk)


def test_marks_become_one_example_per_candidate_of_a_marked_judgment_and_gold_never_counts(span_project):
    judgments = add_marked_judgments(span_project, 4)
    add_marked_judgments(span_project, 2, seed=9, gold=True)
    unmarked = add_marked_judgments(span_project, 1, seed=11)[0]
    SpanMark.objects.filter(judgment=unmarked).delete()
    SpanMark.objects.create(  # a category the schema no longer has: ignored, and alone it marks nothing
        judgment=unmarked, candidate_id=unmarked.winner_id, start=0, end=3, category="retired"
    )
    rows = span_examples(project_id=span_project.pk, max_judgment_id=10**12, categories=["toxic", "off_topic"])
    assert sorted({r.judgment_id for r in rows}) == [j.pk for j in judgments]
    assert len(rows) == 2 * len(judgments)
    stored = SpanMark.objects.filter(judgment__in=judgments)
    assert sum(len(r.example.marks) for r in rows) == stored.count()
    for row in rows:
        for mark in row.example.marks:
            assert 0 <= mark.start < mark.end <= len(row.example.text)
    first = next(r for r in rows if r.example.marks)
    assert first.example.prompt == first_prompt_text(first)


def first_prompt_text(row) -> str:
    return Judgment.objects.get(pk=row.judgment_id).comparison.prompt.text


def test_a_round_registers_an_evaluated_span_version_beside_the_reward_version(span_project, api, researcher):
    add_marked_judgments(span_project, 60)
    marked_judgments = Judgment.objects.filter(project=span_project, spans__isnull=False).distinct().count()
    done = run_round(span_project)

    assert done.status == RoundStatus.SUCCEEDED, done.error
    reward = done.model_version
    span = ModelVersion.objects.get(project=span_project, kind=ModelKind.SPAN)
    assert (reward.kind, reward.is_active, span.version, span.is_active) == ("reward", True, 1, True)
    assert done.metrics["span"]["model_version"] == span.pk
    held_out = span.metrics["eval"]
    examples = span.metrics["examples"]
    assert (
        examples["train"] > 0 and examples["eval"] > 0 and examples["train"] + examples["eval"] == 2 * marked_judgments
    )
    assert held_out["n"] > 0 and held_out["f1"] is not None and held_out["f1"] >= 0.7, held_out
    assert set(held_out["per_category"]) == {"toxic", "off_topic"}
    assert all(c["support"] > 0 and c["f1"] is not None for c in held_out["per_category"].values())
    assert held_out["beats_baselines"] is True and held_out["f1"] > held_out["baselines"]["always_flag"]["f1"]
    # Judgments without a single mark give no span example; held-out ones are counted apart from those it learnt from.
    assert span.judgment_count == span.metrics["judgments"]["train"]
    assert (
        span.metrics["judgments"]["eval"] > 0
        and span.judgment_count + span.metrics["judgments"]["eval"] == marked_judgments < 60
    )
    assert "span model: held-out segment F1" in done.log_tail

    loaded = load_span_reward_model(artifact_location(span))
    assert loaded.config.categories == ("toxic", "off_topic")

    # The API: per-segment scores of a posted text, offsets in code points (an emoji before the flagged sentence).
    clean = " ".join(FILLER_A[:4]) + " 🎉."
    toxic = f"{FILLER_A[5]} {MARKER} {FILLER_A[6]}."
    text = f"{clean} {toxic}"
    response = api.as_user(researcher).post(
        f"/api/v1/projects/{span_project.pk}/span-scores/", {"text": text, "prompt": "q prompt"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["model_version"], body["text_length"]) == (span.pk, len(text))
    assert body["categories"] == ["toxic", "off_topic"]
    assert [(s["start"], s["end"]) for s in body["segments"]] == segment_sentences(text)
    assert [s["text"] for s in body["segments"]] == [clean, toxic]
    assert body["segments"][1]["penalties"]["toxic"] > 0.5 > body["segments"][0]["penalties"]["toxic"]
    assert body["segments"][1]["reward"] < body["segments"][0]["reward"]
    assert body["total"] == pytest.approx(sum(s["reward"] for s in body["segments"]))

    # …and of a stored candidate, with its own prompt as context.
    judgment = Judgment.objects.filter(project=span_project).order_by("pk").first()
    marked = (
        SpanMark.objects.filter(judgment=judgment, category="toxic").first()
        or SpanMark.objects.filter(judgment__project=span_project, category="toxic").first()
    )
    response = api.post(
        f"/api/v1/projects/{span_project.pk}/span-scores/", {"candidate": marked.candidate_id}, format="json"
    )
    assert response.status_code == 200, response.json()
    candidate_text = marked.candidate.text
    segments = response.json()["segments"]
    assert [(s["start"], s["end"]) for s in segments] == segment_sentences(candidate_text)
    flagged = next(s for s in segments if s["start"] <= marked.start < s["end"])
    assert flagged["penalties"]["toxic"] > 0.5


def test_the_held_out_texts_are_those_of_the_held_out_prompts(span_project):
    add_marked_judgments(span_project, 12)
    marked = Judgment.objects.filter(project=span_project, spans__isnull=False).distinct()
    eval_prompt = marked.order_by("pk").first().comparison.prompt
    Prompt.objects.filter(pk=eval_prompt.pk).update(split=Split.EVAL)  # an explicit split: only this one is eval
    done = run_round(span_project)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    span = ModelVersion.objects.get(project=span_project, kind=ModelKind.SPAN)
    assert span.metrics["examples"] == {
        "train": 2 * (marked.count() - 1),
        "eval": 2,
        "categories": ["toxic", "off_topic"],
    }
    assert done.model_version.metrics["pairs"]["eval_prompts"] == 1


def test_without_span_categories_or_marks_no_span_model_is_trained(project, tiny_backbone):
    project.training_settings = span_settings(tiny_backbone)
    project.save(update_fields=["training_settings"])
    add_marked_judgments(project, 8)  # marks, but the schema has no span categories
    done = run_round(project)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    assert not ModelVersion.objects.filter(kind=ModelKind.SPAN).exists() and "span" not in done.metrics


def test_a_span_model_that_would_regress_is_registered_but_not_activated(span_project):
    add_marked_judgments(span_project, 20)
    earlier = ModelVersion.objects.create(
        project=span_project,
        kind=ModelKind.SPAN,
        version=1,
        base_model="earlier",
        artifact_path="earlier/span",
        metrics={"eval": {"f1": 1.01}},  # unbeatable
        judgment_snapshot_id="ps-x",
        is_active=True,
    )
    span_project.training_settings = {**span_project.training_settings, "require_no_regression": True}
    span_project.save(update_fields=["training_settings"])
    done = run_round(span_project)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    new = ModelVersion.objects.get(project=span_project, kind=ModelKind.SPAN, version=2)
    assert not new.is_active and ModelVersion.objects.get(pk=earlier.pk).is_active
    assert new.parent_id == earlier.pk and new.metrics["vs_previous"]["f1"]["improved"] is False


def test_a_span_model_that_does_not_beat_trivial_flagging_is_registered_but_never_activated(span_project):
    # A learning rate that leaves the fresh head as it was: its flags are noise, below always or never flagging.
    span_project.training_settings = {**span_project.training_settings, "span_learning_rate": 1e-12}
    span_project.save(update_fields=["training_settings"])
    add_marked_judgments(span_project, 40)
    done = run_round(span_project)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    span = ModelVersion.objects.get(project=span_project, kind=ModelKind.SPAN)
    held_out = span.metrics["eval"]
    baselines = held_out["baselines"]
    assert held_out["beats_baselines"] is False
    assert baselines["never_flag"]["f1"] == 0.0 and baselines["always_flag"]["f1"] > 0
    assert (held_out["f1"] or 0.0) <= max(b["f1"] for b in baselines.values())
    assert not span.is_active and done.model_version.is_active  # the reward model is not held back by it
    assert "does not beat never/always flagging" in done.log_tail


def test_a_failed_span_step_fails_the_round_and_leaves_no_artifact(span_project, monkeypatch, settings):
    add_marked_judgments(span_project, 10)
    from training.ml import span_rewards

    def broken(*args, **kwargs):
        raise RuntimeError("the span head exploded")

    monkeypatch.setattr(span_rewards, "train_span_reward_model", broken)
    done = run_round(span_project)
    assert done.status == RoundStatus.FAILED
    assert done.error.startswith("Failed while training span model: RuntimeError: the span head exploded")
    assert not ModelVersion.objects.filter(project=span_project).exists()
    root = settings.TRAINING_ARTIFACTS_DIR / str(span_project.pk)
    assert not root.exists() or not any(p.name.startswith("round-") for p in root.rglob("*"))


# --- the span-scores endpoint's answers when it cannot score --------------------------------------------------


def span_scores_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/span-scores/"


@pytest.mark.parametrize(("persona", "status"), [("annotator", 403), ("outsider", 404)])
def test_annotators_and_outsiders_never_see_span_scores(api, request, span_project, persona, status):
    response = api.as_user(request.getfixturevalue(persona)).post(
        span_scores_url(span_project), {"text": "Hello there."}, format="json"
    )
    assert response.status_code == status and set(response.json()) == {"message", "errors"}


def test_without_an_active_span_model_the_answer_says_how_to_get_one(api, researcher, span_project):
    response = api.as_user(researcher).post(span_scores_url(span_project), {"text": "Hello."}, format="json")
    assert response.status_code == 409
    assert "no active span-reward model" in response.json()["message"]


def test_bad_requests_name_the_field(api, researcher, span_project):
    ModelVersion.objects.create(
        project=span_project,
        kind=ModelKind.SPAN,
        version=1,
        base_model="x",
        artifact_path="never-loaded",
        judgment_snapshot_id="ps-x",
        is_active=True,
    )
    client = api.as_user(researcher)
    both = client.post(span_scores_url(span_project), {"text": "Hi.", "candidate": 1}, format="json")
    assert both.status_code == 400 and "candidate" in both.json()["errors"]
    neither = client.post(span_scores_url(span_project), {}, format="json")
    assert neither.status_code == 400 and "candidate" in neither.json()["errors"]
    elsewhere = CandidateFactory(prompt=PromptFactory())  # another project's candidate
    foreign = client.post(span_scores_url(span_project), {"candidate": elsewhere.pk}, format="json")
    assert foreign.status_code == 400 and foreign.json()["errors"]["candidate"] == [
        f"No candidate {elsewhere.pk} in this project."
    ]
    reward = ModelVersion.objects.create(
        project=span_project,
        kind=ModelKind.REWARD,
        version=1,
        base_model="x",
        artifact_path="r",
        judgment_snapshot_id="p",
    )
    wrong_kind = client.post(span_scores_url(span_project), {"text": "Hi.", "model_version": reward.pk}, format="json")
    assert wrong_kind.status_code == 400 and "model_version" in wrong_kind.json()["errors"]
    long = client.post(span_scores_url(span_project), {"text": "a" * 100_001}, format="json")
    assert long.status_code == 400 and "at most 100000" in long.json()["errors"]["text"][0]


def test_when_every_marked_text_is_held_out_the_reward_round_still_succeeds(span_project):
    from .conftest import add_judgments

    add_judgments(span_project, 12)
    marked = add_marked_judgments(span_project, 1, seed=4)
    SpanMark.objects.filter(judgment=marked[0]).update(category="toxic")  # at least one mark, whatever was drawn
    if not SpanMark.objects.filter(judgment=marked[0]).exists():
        SpanMark.objects.create(judgment=marked[0], candidate_id=marked[0].winner_id, start=0, end=4, category="toxic")
    Prompt.objects.filter(pk=marked[0].comparison.prompt_id).update(split=Split.EVAL)
    done = run_round(span_project)
    assert done.status == RoundStatus.SUCCEEDED, done.error
    assert "no span model this round" in done.log_tail
    assert not ModelVersion.objects.filter(kind=ModelKind.SPAN).exists() and done.model_version.is_active
