"""Reward-model training on tiny models built in the test: learning, ensembles, truncation, atomic save."""

import dataclasses
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("datasets")

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training.ml import reward
from training.ml.evaluate import evaluate_reward_model
from training.ml.pairs import build_preference_pairs
from training.ml.reward import (
    MANIFEST,
    RewardTrainingConfig,
    encode_texts,
    load_reward_model,
    prepare_tokenizer,
    save_reward_model,
    train_reward_model,
)

from .synthetic import CUE, FILLER_A, MARKER, marker_judgments

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def marker_pairs():
    return build_preference_pairs(marker_judgments(300, seed=1), eval_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def trained(tiny_backbone, marker_pairs):
    """One BERT member trained on 'the candidate with MARKER wins' (~45 steps), with its progress reports."""
    steps = []
    config = RewardTrainingConfig(
        backbone=tiny_backbone, learning_rate=2e-3, num_epochs=3, batch_size=16, max_length=32, logging_steps=5
    )
    model = train_reward_model(marker_pairs, config, progress=lambda s, t, loss: steps.append((s, t, loss)))
    return model, steps


def test_tiny_model_learns_the_marker_preference_on_held_out_prompts(trained, marker_pairs):
    model, _ = trained
    metrics = evaluate_reward_model(model, marker_pairs.eval)
    assert metrics["n_pairs"] >= 40
    assert metrics["accuracy"] >= 0.9
    # Both candidates have the same length in characters: the model cannot have used length.
    assert metrics["data_longer_chosen_rate"] is None


def test_training_changes_the_parameters(trained, tiny_backbone):
    model, _ = trained
    before = AutoModelForSequenceClassification.from_pretrained(tiny_backbone, num_labels=1)
    after = dict(model.members[0].named_parameters())
    for name, param in before.named_parameters():
        if name.startswith("bert.encoder") or name.startswith("bert.embeddings.word"):
            assert not torch.equal(param, after[name]), f"{name} did not change"


def test_progress_reports_every_step_with_a_falling_loss(trained):
    _, steps = trained
    assert [s for s, _, _ in steps] == list(range(1, len(steps) + 1))
    assert all(total == len(steps) for _, total, _ in steps)
    first, last = steps[0][2], steps[-1][2]
    assert first == pytest.approx(0.693, abs=0.1)  # log 2: a fresh head scores both candidates alike
    assert last < 0.3


def test_saved_model_loads_with_plain_from_pretrained_and_records_its_labels(trained, marker_pairs, tmp_path):
    model, _ = trained
    path = save_reward_model(model, tmp_path / "rm-v1", extra={"code_version": "abc123"})
    plain = AutoModelForSequenceClassification.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.truncation_side == "left"
    pair = marker_pairs.eval[0]
    ids = encode_texts(
        prepare_tokenizer(tokenizer), [pair.prompt] * 2, [pair.chosen, pair.rejected], config=model.config
    )
    with torch.no_grad():
        rewards = [plain(input_ids=torch.tensor([x])).logits.item() for x in ids]
    assert rewards[0] > rewards[1]
    assert rewards == pytest.approx(model.score([pair.prompt] * 2, [pair.chosen, pair.rejected])[0].tolist(), abs=1e-5)

    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["snapshot_id"] == marker_pairs.snapshot_id
    assert manifest["config"]["learning_rate"] == 2e-3 and manifest["extra"] == {"code_version": "abc123"}
    # Exactly the labels it trained from; the held-out ones are listed apart and counted apart.
    trained_from = (path / "judgment_ids.txt").read_text().split()
    held_out = (path / "eval_judgment_ids.txt").read_text().split()
    assert marker_pairs.eval and not set(trained_from) & set(held_out)
    assert trained_from == sorted({str(j) for p in marker_pairs.train for j in p.judgment_ids})
    assert held_out == sorted({str(j) for p in marker_pairs.eval for j in p.judgment_ids})
    assert (manifest["judgment_count"], manifest["eval_judgment_count"]) == (len(trained_from), len(held_out))
    again = load_reward_model(path)
    assert again.judgment_ids == tuple(trained_from) and again.eval_judgment_ids == tuple(held_out)
    assert again.snapshot_id == marker_pairs.snapshot_id and again.config == model.config
    assert torch.allclose(again.score([pair.prompt], [pair.chosen]), model.score([pair.prompt], [pair.chosen]))


def test_a_crash_mid_save_leaves_nothing_at_the_final_path(trained, tmp_path, monkeypatch):
    model, _ = trained

    def crash_after_writing_weights(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(model.tokenizer), "save_pretrained", crash_after_writing_weights)
    with pytest.raises(OSError, match="disk full"):
        save_reward_model(model, tmp_path / "rm-v2")
    assert list(tmp_path.iterdir()) == []  # neither the final folder nor the staging folder


def test_saving_never_overwrites_an_existing_artifact(trained, tmp_path):
    (tmp_path / "rm-v1").mkdir()
    (tmp_path / "rm-v1" / "keep").write_text("x")
    with pytest.raises(FileExistsError):
        save_reward_model(trained[0], tmp_path / "rm-v1")
    assert [p.name for p in (tmp_path / "rm-v1").iterdir()] == ["keep"]


def test_long_dialogues_are_cut_from_the_left_keeping_special_tokens(tiny_backbone, tiny_causal_backbone):
    config = RewardTrainingConfig(backbone="unused", max_length=6)
    words = FILLER_A[:10]
    for path, head, tail in ((tiny_backbone, "[CLS]", "[SEP]"), (tiny_causal_backbone, None, "</s>")):
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
        (ids,) = encode_texts(tokenizer, [" ".join(words[:6])], [" ".join(words[6:])], config=config)
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert len(ids) == 6 and tokens[-1] == tail
        body = tokens[1:-1] if head else tokens[:-1]
        assert body == words[-len(body) :]  # the END of the dialogue survives
        if head:
            assert tokens[0] == head


def test_nothing_is_dropped_for_length(tiny_backbone, marker_pairs):
    """TRL filters pairs longer than max_length; ours are truncated instead, so every pair trains."""
    config = RewardTrainingConfig(backbone=tiny_backbone, max_length=4)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_backbone))
    dataset = reward._pairs_dataset(marker_pairs.train, tokenizer, config)
    assert len(dataset) == len(marker_pairs.train)
    assert max(len(x) for x in dataset["chosen_ids"]) == 4


def test_ensemble_disagrees_more_out_of_distribution(tiny_causal_backbone):
    """Train 3 members where MARKER and CUE always win together; out of distribution they compete.

    In training both words are equally good evidence, so how much each member leans on either is underdetermined
    (seed, head initialisation, bootstrap sample). In distribution every member is confident and they agree; on
    pairs that pit MARKER against CUE their answers spread.
    """
    pairs = build_preference_pairs(marker_judgments(300, seed=1, winner_words=(MARKER, CUE)), eval_fraction=0.2)
    config = RewardTrainingConfig(
        backbone=tiny_causal_backbone,
        learning_rate=2e-3,
        num_epochs=3,
        batch_size=16,
        max_length=32,
        ensemble_size=3,
    )
    model = train_reward_model(pairs, config)
    conflict = marker_judgments(100, seed=5, winner_words=(MARKER,), loser_words=(CUE,), start_id=10_000)
    ood = build_preference_pairs(conflict, eval_fraction=0).train

    in_dist = evaluate_reward_model(model, pairs.eval)
    out_dist = evaluate_reward_model(model, ood)
    assert in_dist["members"] == 3 and in_dist["accuracy"] >= 0.9
    # Over 3 backbones x 2 seeds the ratio ranged 2.2-26 (median ~16); this run is seeded, the bound is loose.
    assert out_dist["disagreement"] > 2 * in_dist["disagreement"]
    uncertainty = reward.pair_uncertainty(*model.score_pairs(ood[:4]))
    assert set(uncertainty) == {"mean_chosen", "mean_rejected", "prob", "delta_std", "disagreement"}
    assert uncertainty["disagreement"].shape == (4,)


def test_lora_training_saves_a_plain_model(tiny_backbone, marker_pairs, tmp_path):
    config = RewardTrainingConfig(backbone=tiny_backbone, learning_rate=1e-2, max_steps=3, batch_size=8, lora_r=4)
    model = train_reward_model(marker_pairs, config)
    path = save_reward_model(model, tmp_path / "rm-lora")
    plain = AutoModelForSequenceClassification.from_pretrained(path)
    assert not any("lora" in name for name, _ in plain.named_parameters())
    assert not (path / "adapter_config.json").exists()


def test_a_max_length_beyond_the_backbones_positions_is_cut_to_what_it_can_embed(tiny_backbone):
    """The tiny backbone embeds 128 positions: a configured 300 must not crash training on long texts."""
    long_text = " ".join([FILLER_A[0]] * 400)
    judgments = [dataclasses.replace(j, prompt_text=long_text) for j in marker_judgments(12, seed=3)]
    pairs = build_preference_pairs(judgments, eval_fraction=0.0)
    config = RewardTrainingConfig(backbone=tiny_backbone, max_length=300, max_steps=2, batch_size=4)
    model = train_reward_model(pairs, config)
    assert model.tokenizer.model_max_length == 128
    assert max(len(ids) for ids in encode_texts(model.tokenizer, [long_text], ["x"], config=config)) == 128


# --- length buckets: fewer padded slots, the same numbers --------------------------------------------------------


def _padding_waste(lengths, ends):
    return sum((stop - start) * lengths[stop - 1] for start, stop in zip([0, *ends[:-1]], ends, strict=True))


def test_length_slices_finds_the_cheapest_cuts():
    """Against every way of cutting small sorted batches into at most k runs."""
    import itertools
    import random

    rng = random.Random(0)
    for _ in range(200):
        lengths = sorted(rng.randint(1, 60) for _ in range(rng.randint(1, 9)))
        k = rng.randint(1, 4)
        n = len(lengths)
        best = min(
            _padding_waste(lengths, [*cuts, n])
            for r in range(min(k, n))
            for cuts in itertools.combinations(range(1, n), r)
        )
        ends = reward.length_slices(lengths, k)
        assert len(ends) <= k and ends[-1] == n and ends == sorted(set(ends))
        assert _padding_waste(lengths, ends) == best
    with pytest.raises(ValueError, match="ascending"):
        reward.length_slices([3, 1], 2)


def _varied_length_pairs(n: int):
    """Marker pairs whose prompts run from 1 to 20 words, so a random batch mixes short and long sequences."""
    import random

    rng = random.Random(7)
    judgments = [
        dataclasses.replace(j, prompt_text=" ".join(rng.choices(FILLER_A, k=rng.randint(1, 20))))
        for j in marker_judgments(n, seed=2)
    ]
    return build_preference_pairs(judgments, eval_fraction=0.0)


@pytest.mark.parametrize("backbone_fixture", ["tiny_backbone", "tiny_causal_backbone"])
def test_bucketed_forward_gives_the_rewards_and_gradients_of_one_padded_forward(backbone_fixture, request):
    """Encoder (first-token pooling) and decoder (last-token pooling) alike: padding is masked, so slicing the
    batch by length must not change a single reward or gradient."""
    backbone = request.getfixturevalue(backbone_fixture)
    config = RewardTrainingConfig(backbone=backbone, max_length=32)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(backbone))
    pairs = _varied_length_pairs(12).train
    batch = reward._PairCollator(pad_token_id=tokenizer.pad_token_id)(
        list(reward._pairs_dataset(pairs, tokenizer, config))
    )
    lengths = batch["attention_mask"].sum(1)
    assert lengths.min() < lengths.max() / 2  # the batch really mixes lengths

    def rewards_and_grads(buckets):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id
        model.eval()  # dropout off, as TRL's trainer sets it
        trainer = object.__new__(reward._TandemRewardTrainer)
        trainer._length_buckets = buckets
        rewards = trainer._rewards(model, batch["input_ids"], batch["attention_mask"])
        rewards.pow(2).sum().backward()
        return rewards.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    one_rewards, one_grads = rewards_and_grads(1)
    sliced_rewards, sliced_grads = rewards_and_grads(4)
    torch.testing.assert_close(sliced_rewards, one_rewards, rtol=1e-5, atol=1e-6)
    assert len(sliced_grads) == len(one_grads)
    for sliced, one in zip(sliced_grads, one_grads, strict=True):
        torch.testing.assert_close(sliced, one, rtol=1e-4, atol=1e-6)


def test_length_buckets_change_speed_not_what_is_learned(tiny_backbone):
    """Same seed, random batches: training with buckets ends at the weights of training without them."""
    pairs = _varied_length_pairs(48)
    # No warm-up: the schedule the tolerance below was set at. Adam turns the slices' rounding-sized gradient
    # differences into whole steps for near-still parameters, a little more so after a warm-up's first step.
    base = RewardTrainingConfig(
        backbone=tiny_backbone, learning_rate=2e-3, warmup_ratio=0.0, max_steps=6, batch_size=8, max_length=32
    )
    one = train_reward_model(pairs, dataclasses.replace(base, length_buckets=1)).members[0]
    sliced = train_reward_model(pairs, dataclasses.replace(base, length_buckets=4)).members[0]
    untrained = AutoModelForSequenceClassification.from_pretrained(tiny_backbone, num_labels=1)
    head = dict(untrained.named_parameters())
    moved = 0
    for (name, p_one), p_sliced in zip(one.named_parameters(), sliced.parameters(), strict=True):
        torch.testing.assert_close(p_sliced, p_one, rtol=1e-4, atol=1e-5, msg=name)
        if name in head and not name.startswith("classifier"):
            moved += int(not torch.allclose(p_one, head[name]))
    assert moved > 0  # six steps really trained the backbone


def test_scores_come_back_in_the_callers_order(trained):
    """Scoring sorts by length internally; each score must still belong to its own text."""
    model, _ = trained
    prompts = ["q", "q " + " ".join(FILLER_A[:12]), "q " + FILLER_A[0]]
    responses = [f"{MARKER} {FILLER_A[1]}", FILLER_A[2], " ".join(FILLER_A[3:9])]
    together = model.score(prompts, responses, batch_size=2)[0]
    alone = torch.stack([model.score([p], [r])[0, 0] for p, r in zip(prompts, responses, strict=True)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
