"""Candidate generation on a tiny causal LM: per-candidate seeds, the sampled distribution, lengths and eos."""

import copy
import math
from collections import Counter

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from training.ml.generation import (
    Generation,
    SamplingConfig,
    candidate_seed,
    generate_candidates,
    load_causal_lm,
    prompt_token_ids,
)

PROMPTS = ["q wa001 wa002", "q", "q wa003 wa004 wa005 wa006 wa007 wa008 wa009", "prompt wa010"]


@pytest.fixture(scope="module")
def policy(tiny_causal_lm):
    return load_causal_lm(tiny_causal_lm)


@pytest.fixture(scope="module")
def peaked_policy(policy):
    """The tiny model with its logits scaled ×8: a random model's next-token distribution is nearly uniform, where
    a wrong temperature would go unnoticed (with ×8, sampling at T=0.7 against softmax at T=0.8 fails the test)."""
    model, tokenizer = policy
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.lm_head.weight.mul_(8)
    return model, tokenizer


def first_token_probs(model, tokenizer, prompt: str, sampling: SamplingConfig) -> torch.Tensor:
    """softmax(logits / T) of the first response token, top-k applied by hand: (V,)."""
    ids = torch.tensor([prompt_token_ids(tokenizer, prompt)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1] / sampling.temperature  # (V,)
    if sampling.top_k:
        kth = logits.topk(sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    return logits.softmax(-1)


def first_token_id(tokenizer, generation: Generation) -> int | str:
    """The first sampled token from a one-token generation; special tokens other than eos decode to "" together."""
    if generation.finish_reason == "eos":
        return tokenizer.eos_token_id
    if generation.text == "":
        return "special"
    return tokenizer.convert_tokens_to_ids(generation.text)


def chi_square_is_plausible(counts: Counter, probs: dict, n: int) -> tuple[float, float]:
    """Pearson's statistic (bins with expected < 5 pooled) and its 0.1 % critical value (Wilson–Hilferty)."""
    bins = [(counts.get(key, 0), n * p) for key, p in probs.items()]
    big = [(o, e) for o, e in bins if e >= 5]
    small = [(o, e) for o, e in bins if e < 5]
    if small:
        big.append((sum(o for o, _ in small), sum(e for _, e in small)))
    stat = sum((o - e) ** 2 / e for o, e in big if e > 0)
    df = len(big) - 1
    z = 3.090  # one-sided 0.1 %
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return stat, critical


def test_sampling_config_bounds_max_new_tokens():
    for bad in (0, 4097):
        with pytest.raises(ValueError, match="max_new_tokens"):
            SamplingConfig(max_new_tokens=bad)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    assert SamplingConfig(max_new_tokens=4096).max_new_tokens == 4096


def test_it_returns_k_candidates_per_prompt_with_default_seeds(policy):
    model, tokenizer = policy
    out = generate_candidates(model, tokenizer, PROMPTS, k=3, sampling=SamplingConfig(max_new_tokens=6), base_seed=7)
    assert [len(row) for row in out] == [3, 3, 3, 3]
    for i, row in enumerate(out):
        assert [g.prompt_index for g in row] == [i, i, i]
        assert [g.seed for g in row] == [candidate_seed(7, i, j) for j in range(3)]


def test_a_seed_reproduces_its_candidate_alone_or_in_any_batch(policy):
    model, tokenizer = policy
    sampling = SamplingConfig(max_new_tokens=12, temperature=0.9, top_p=0.95, batch_size=5)
    together = generate_candidates(model, tokenizer, PROMPTS, k=3, sampling=sampling)

    # Alone: batch of one, no padding.
    for row in together:
        for g in row:
            alone = generate_candidates(
                model,
                tokenizer,
                [PROMPTS[g.prompt_index]],
                k=1,
                sampling=SamplingConfig(max_new_tokens=12, temperature=0.9, top_p=0.95, batch_size=1),
                seeds=[[g.seed]],
            )[0][0]
            assert (alone.text, alone.token_count, alone.finish_reason) == (g.text, g.token_count, g.finish_reason)

    # Another batch: prompts in reverse order beside an unrelated one, other batch size, other padding.
    reordered = [*PROMPTS[::-1], "q wa020 wa021 wa022 wa023 wa024 wa025 wa026 wa027 wa028"]
    seeds = [[g.seed for g in row] for row in together[::-1]] + [[1, 2, 3]]
    again = generate_candidates(
        model, tokenizer, reordered, k=3, sampling=SamplingConfig(**{**vars(sampling), "batch_size": 7}), seeds=seeds
    )
    assert [[g.text for g in row] for row in again[:4]] == [[g.text for g in row] for row in together[::-1]]


def test_different_seeds_give_different_texts(policy):
    model, tokenizer = policy
    out = generate_candidates(model, tokenizer, ["q wa001 wa002"], k=8, sampling=SamplingConfig(max_new_tokens=10))
    assert len({g.text for g in out[0]}) >= 6  # a random tiny model: collisions are possible, not likely


@pytest.mark.parametrize(
    "sampling",
    [SamplingConfig(max_new_tokens=1, temperature=0.7), SamplingConfig(max_new_tokens=1, temperature=1.5, top_k=3)],
    ids=["temperature", "top_k"],
)
def test_the_first_token_follows_the_warped_softmax(peaked_policy, sampling):
    model, tokenizer = peaked_policy
    sampling = SamplingConfig(**{**vars(sampling), "batch_size": 500})
    prompt, n = "q wa001 wa002", 3000
    probs = first_token_probs(model, tokenizer, prompt, sampling)  # (V,)
    out = generate_candidates(model, tokenizer, [prompt], k=n, sampling=sampling, base_seed=11)[0]
    counts = Counter(first_token_id(tokenizer, g) for g in out)

    expected: dict = {}
    silent = {t for t in range(len(probs)) if tokenizer.decode([t], skip_special_tokens=True) == ""}
    specials = silent - {tokenizer.eos_token_id}
    for token, p in enumerate(probs.tolist()):
        key = "special" if token in specials else token
        expected[key] = expected.get(key, 0.0) + p
    assert set(counts) <= {key for key, p in expected.items() if p > 0}  # nothing top-k removed is ever drawn
    stat, critical = chi_square_is_plausible(counts, expected, n)
    assert stat < critical, (stat, critical)


def test_max_new_tokens_and_finish_reason(policy):
    model, tokenizer = policy
    out = generate_candidates(model, tokenizer, PROMPTS, k=64, sampling=SamplingConfig(max_new_tokens=5))
    flat = [g for row in out for g in row]
    assert {g.finish_reason for g in flat} == {"eos", "length"}  # the seeds are fixed: both occur
    for g in flat:
        assert 1 <= g.token_count <= 5
        if g.finish_reason == "length":
            assert g.token_count == 5
            assert len(tokenizer(g.text, add_special_tokens=False)["input_ids"]) <= 5


def test_eos_ends_a_row_while_the_rest_of_its_batch_goes_on(policy):
    model, tokenizer = policy
    sampling = SamplingConfig(max_new_tokens=30, batch_size=16)
    out = generate_candidates(model, tokenizer, ["q wa001 wa002"], k=16, sampling=sampling)[0]
    ended = [g for g in out if g.finish_reason == "eos" and g.token_count >= 3]
    assert ended and any(g.token_count == 30 for g in out)  # short rows stopped, others ran on in the same batch
    g = ended[0]
    assert tokenizer.eos_token not in g.text

    def regenerate(max_new_tokens: int) -> Generation:
        config = SamplingConfig(max_new_tokens=max_new_tokens, batch_size=1)
        return generate_candidates(model, tokenizer, ["q wa001 wa002"], k=1, sampling=config, seeds=[[g.seed]])[0][0]

    exact = regenerate(g.token_count)  # room for exactly the eos: still "eos"
    assert (exact.text, exact.finish_reason, exact.token_count) == (g.text, "eos", g.token_count)
    cut = regenerate(g.token_count - 1)  # one short: the same words, cut for length
    assert (cut.text, cut.finish_reason, cut.token_count) == (g.text, "length", g.token_count - 1)


def test_without_a_chat_template_the_raw_prompt_is_used(policy):
    _, tokenizer = policy
    templated = prompt_token_ids(tokenizer, "q wa001")
    assert tokenizer.convert_ids_to_tokens(templated) == ["<|user|>", "q", "wa001", "</s>", "<|assistant|>"]
    base = copy.deepcopy(tokenizer)
    base.chat_template = None
    assert prompt_token_ids(base, "q wa001") == tokenizer("q wa001")["input_ids"]


def test_load_causal_lm_pads_left_and_falls_back_to_eos(tiny_causal_lm, tmp_path):
    model, tokenizer = load_causal_lm(tiny_causal_lm)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "[PAD]"
    assert not model.training

    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    _, no_pad = load_causal_lm(tmp_path)
    assert no_pad.pad_token == no_pad.eos_token == "</s>"
