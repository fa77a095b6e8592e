"""Fine-grained span rewards: exact sentence offsets, labels from marks, a tiny model that learns, save/load."""

import json
import random

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from transformers import AutoModel

from training.ml.span_rewards import (
    HEAD_FILE,
    MANIFEST,
    SpanExample,
    SpanMark,
    SpanRewardConfig,
    load_span_reward_model,
    save_span_reward_model,
    segment_bce_loss,
    segment_labels,
    segment_sentences,
    train_span_reward_model,
)

from .synthetic import CUE, FILLER_A, MARKER


def texts_of(text, segments):
    return [text[s:e] for s, e in segments]


# --- segmentation ---------------------------------------------------------------------------------------------------


def test_sentences_split_after_terminal_punctuation_and_trim_whitespace():
    text = "  Hello there. How are you?  Fine!\n\nNew line without stop\nLast one… "
    segments = segment_sentences(text)
    assert texts_of(text, segments) == [
        "Hello there.",
        "How are you?",
        "Fine!",
        "New line without stop",
        "Last one…",
    ]
    assert segments[0] == (2, 14)


def test_decimals_and_closing_quotes_stay_in_their_sentence():
    text = 'Pi is 3.14 roughly. He said "stop." Then left.'
    assert texts_of(text, segment_sentences(text)) == ["Pi is 3.14 roughly.", 'He said "stop."', "Then left."]


def test_offsets_are_code_points_with_emoji_and_combining_marks():
    # "🎉" is one code point (two UTF-16 units, four UTF-8 bytes); "👩‍💻" is three (ZWJ sequence); "é" here is
    # e + U+0301 (combining acute), and the second sentence ends with "?" followed by a combining mark.
    text = "Party 🎉 time. Cafe\u0301 👩\u200d💻 ok?\u0301 Yes."
    segments = segment_sentences(text)
    assert texts_of(text, segments) == ["Party 🎉 time.", "Cafe\u0301 👩\u200d💻 ok?\u0301", "Yes."]
    assert segments == [(0, 13), (14, 28), (29, 33)]
    assert len(text) == 33  # code points, as the annotation UI records them


def test_cjk_sentences_split_without_spaces():
    text = "今日は晴れです。明日は雨？「はい。」了解！"
    assert texts_of(text, segment_sentences(text)) == ["今日は晴れです。", "明日は雨？", "「はい。」", "了解！"]
    assert segment_sentences(text)[1] == (8, 13)


def test_every_non_space_character_is_in_exactly_one_segment():
    rng = random.Random(0)
    alphabet = [*"ab .!?\n。🎉", "e\u0301"]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        segments = segment_sentences(text)
        covered = [i for s, e in segments for i in range(s, e)]
        assert covered == sorted(set(covered))  # in order, no overlap
        assert {i for i, ch in enumerate(text) if not ch.isspace()} <= set(covered)
        assert all(not text[s].isspace() and not text[e - 1].isspace() for s, e in segments)


# --- labels and loss ------------------------------------------------------------------------------------------------


def test_a_segment_is_positive_where_a_mark_of_its_category_overlaps_it():
    text = "One two. Three four. Five six."
    segments = segment_sentences(text)  # (0, 8), (9, 20), (21, 30)
    marks = [
        SpanMark(4, 7, "toxic"),  # inside sentence 1
        SpanMark(18, 23, "off_topic"),  # across the boundary of sentences 2 and 3
        SpanMark(8, 9, "toxic"),  # only the space between sentences 1 and 2: overlaps neither
        SpanMark(0, 3, "unknown"),  # not a project category: ignored
    ]
    assert segment_labels(segments, marks, ["toxic", "off_topic"]) == [[1, 0], [0, 1], [0, 1]]
    assert segment_labels(segments, [SpanMark(20, 21, "toxic")], ["toxic"]) == [[0], [0], [0]]  # touching ≠ overlap
    with pytest.raises(ValueError):
        segment_labels(segments, [SpanMark(5, 5, "toxic")], ["toxic"])


def test_segment_bce_matches_hand_computed_value_and_ignores_padding():
    logits = torch.tensor([[[0.0, 2.0], [5.0, -5.0]]])  # (B=1, S=2, C=2); the second segment is padding
    labels = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[1.0, 0.0]])
    loss, metrics = segment_bce_loss(logits, labels, mask)
    expected = (-torch.log(torch.sigmoid(torch.tensor(0.0))) - torch.log(1 - torch.sigmoid(torch.tensor(2.0)))) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert metrics["accuracy"] == 0.0  # 0.0 is not > 0 (predicted negative), 2.0 predicted positive: both wrong


# --- a tiny model learns ----------------------------------------------------------------------------------------------


def marked_examples(n, *, seed):
    """Texts of 2-4 sentences; a sentence with MARKER is marked "toxic" (on the word only), one with CUE
    "off_topic" (the whole sentence). Sentences are filler words, so only the marker words tell."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
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
                marks.append(SpanMark(pos + at, pos + at + len(MARKER), "toxic"))
            elif kind == "off_topic":
                marks.append(SpanMark(pos, pos + len(sentence), "off_topic"))
            parts.append(sentence)
            pos += len(sentence) + 1
        out.append(SpanExample(text=" ".join(parts), marks=tuple(marks), prompt="q prompt"))
    return out


def test_span_metrics_report_trivial_baselines_and_per_category_support():
    from training.ml.span_rewards import span_decision_metrics

    # 107 (segment, category) decisions, 7 marked (5 toxic, 2 off_topic). The model flags 10 toxic segments and
    # gets 1 right: its F1 is above 0 (never flagging) but below flagging everything.
    decisions = [("toxic", i == 0, i < 5) for i in range(50)] + [("toxic", True, False)] * 9
    decisions += [("off_topic", False, i < 2) for i in range(48)]
    m = span_decision_metrics(decisions, ["toxic", "off_topic"])
    assert m["n"] == 107 and m["accuracy"] == pytest.approx(92 / 107)
    assert m["f1"] == pytest.approx(2 / (2 + 9 + 6))
    never, always = m["baselines"]["never_flag"], m["baselines"]["always_flag"]
    assert never == {"accuracy": pytest.approx(100 / 107), "f1": 0.0}
    assert always == {"accuracy": pytest.approx(7 / 107), "f1": pytest.approx(14 / (14 + 100))}
    assert 0.0 < m["f1"] < always["f1"] and m["beats_baselines"] is False
    toxic, off_topic = m["per_category"]["toxic"], m["per_category"]["off_topic"]
    assert (toxic["support"], toxic["n"], toxic["tp"], toxic["fp"], toxic["fn"]) == (5, 59, 1, 9, 4)
    assert toxic["f1"] == pytest.approx(2 / 15) and toxic["precision"] == pytest.approx(0.1)
    assert (off_topic["support"], off_topic["f1"], off_topic["precision"]) == (2, 0.0, None)

    # Flag only the one it gets right: F1 2/8 beats both.
    precise = [(c, flagged and marked, marked) for c, flagged, marked in decisions]
    assert span_decision_metrics(precise, ["toxic", "off_topic"])["beats_baselines"] is True


@pytest.fixture(scope="module")
def trained_span_model(tiny_backbone):
    config = SpanRewardConfig(
        backbone=tiny_backbone,
        categories=("toxic", "off_topic"),
        category_weights={"toxic": 2.0},
        learning_rate=3e-3,
        num_epochs=4,
        batch_size=16,
        max_length=64,
    )
    losses = []
    model = train_span_reward_model(
        marked_examples(240, seed=1), config, progress=lambda s, t, loss: losses.append(loss)
    )
    return model, losses


@pytest.mark.slow
def test_tiny_model_flags_the_sentences_with_marker_words_on_held_out_texts(trained_span_model):
    from training.ml.span_rewards import segment_metrics

    model, losses = trained_span_model
    assert losses[-1] < losses[0] / 3
    metrics = segment_metrics(model, marked_examples(60, seed=99))
    assert metrics["n"] >= 2 * 120
    assert metrics["accuracy"] >= 0.9
    assert metrics["f1"] >= 0.9
    assert all(c["f1"] >= 0.85 for c in metrics["per_category"].values())


@pytest.mark.slow
def test_dense_reward_penalises_the_flagged_sentence_by_its_category_weight(trained_span_model):
    model, _ = trained_span_model
    clean = " ".join(FILLER_A[:4]) + "."
    toxic = f"{FILLER_A[5]} {MARKER} {FILLER_A[6]}."
    text = f"{clean} {toxic} {clean}"
    scored = model.score_segments(text, prompt="q prompt")
    assert [(s, e) for s, e, _ in scored] == segment_sentences(text)
    assert scored[1][2]["toxic"] > 0.5 > scored[0][2]["toxic"]
    dense = model.dense_reward(text, prompt="q prompt", holistic=1.5)
    middle = dense["segments"][1]
    assert middle["reward"] == pytest.approx(-(2.0 * middle["penalties"]["toxic"] + middle["penalties"]["off_topic"]))
    assert dense["total"] == pytest.approx(sum(s["reward"] for s in dense["segments"]) + 1.5)
    assert dense["segments"][1]["reward"] < dense["segments"][0]["reward"]


@pytest.mark.slow
def test_long_texts_are_scored_in_windows_of_whole_sentences(trained_span_model):
    model, _ = trained_span_model
    sentence = " ".join(FILLER_A[:8]) + "."
    text = " ".join([sentence] * 12 + [f"{FILLER_A[1]} {MARKER}."])  # ~110 tokens > max_length 64
    scored = model.score_segments(text)
    assert len(scored) == 13
    assert scored[-1][2]["toxic"] > 0.5


@pytest.mark.slow
def test_saved_span_model_round_trips_and_its_backbone_loads_plainly(trained_span_model, tmp_path):
    model, _ = trained_span_model
    path = save_span_reward_model(model, tmp_path / "span-v1", extra={"round": 7})
    assert (path / HEAD_FILE).is_file()
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["config"]["categories"] == ["toxic", "off_topic"] and manifest["extra"] == {"round": 7}
    AutoModel.from_pretrained(path)  # plain transformers, no Tandem code
    again = load_span_reward_model(path)
    assert again.config == model.config
    text = f"{FILLER_A[0]} {MARKER} {FILLER_A[1]}. {FILLER_A[2]} {CUE}."
    before, after = model.score_segments(text), again.score_segments(text)
    assert [(s, e) for s, e, _ in before] == [(s, e) for s, e, _ in after]
    for (_, _, p), (_, _, q) in zip(before, after, strict=True):
        assert p == pytest.approx(q, abs=1e-5)
    with pytest.raises(FileExistsError):
        save_span_reward_model(model, path)
