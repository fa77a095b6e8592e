"""Policy evaluation: sequence log-probs on a tiny causal LM, the Wilson interval, and metrics on hand-made numbers."""

import doctest
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from preference.stats import wilson_interval
from training.ml import policy_eval
from training.ml.generation import SamplingConfig, generate_candidates, load_causal_lm, prompt_token_ids
from training.ml.policy_eval import evaluate_policy, sequence_logprobs


@pytest.fixture(scope="module")
def policy(tiny_causal_lm):
    return load_causal_lm(tiny_causal_lm)


def test_sequence_logprobs_matches_a_token_by_token_loop(policy):
    model, tokenizer = policy
    prompt, response = "q wa001 wa002", "wa003 great wa004"
    context = prompt_token_ids(tokenizer, prompt)
    answer = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    hand = 0.0
    with torch.no_grad():
        for t, token in enumerate(answer):  # one forward per response token, no padding, no batching
            logits = model(input_ids=torch.tensor([context + answer[:t]])).logits[0, -1]
            hand += torch.log_softmax(logits, -1)[token].item()

    # In a batch with longer and shorter rows (right padding on both sides of it).
    prompts = ["q", prompt, "q wa005 wa006 wa007 wa008 wa009 wa010"]
    responses = ["wa011", response, "wa012 wa013 wa014 wa015 wa016"]
    got = sequence_logprobs(model, tokenizer, prompts, responses, batch_size=3, end_with_eos=[False, True, False])
    assert got.shape == (3,)
    assert got[1].item() == pytest.approx(hand, abs=1e-4)
    alone = sequence_logprobs(model, tokenizer, prompts, responses, batch_size=1, end_with_eos=[False, True, False])
    torch.testing.assert_close(got, alone, atol=1e-4, rtol=0)


def test_the_eos_flag_adds_the_eos_log_prob_and_an_empty_response_scores_zero(policy):
    model, tokenizer = policy
    without, with_eos = (
        sequence_logprobs(model, tokenizer, ["q"], ["wa001"], end_with_eos=flag)[0].item() for flag in (False, True)
    )
    assert with_eos < without  # one more (negative) log-prob
    assert sequence_logprobs(model, tokenizer, ["q"], [""])[0].item() == 0.0


def test_kl_of_a_policy_against_itself_is_zero(policy, tiny_causal_lm):
    model, tokenizer = policy
    reference_model, _ = load_causal_lm(tiny_causal_lm)  # the same weights, loaded again as a reference would be
    prompts = ["q wa001", "q wa002 wa003", "prompt"]
    generations = generate_candidates(model, tokenizer, prompts, k=1, sampling=SamplingConfig(max_new_tokens=8))
    texts = [row[0].text for row in generations]
    eos = [row[0].finish_reason == "eos" for row in generations]
    logprobs = sequence_logprobs(model, tokenizer, prompts, texts, end_with_eos=eos)
    reference = sequence_logprobs(reference_model, tokenizer, prompts, texts, end_with_eos=eos, batch_size=1)
    metrics = evaluate_policy(
        prompts=prompts,
        new_texts=texts,
        previous_texts=texts,
        reward_model_score=lambda p, r: torch.zeros(2, len(r)),
        new_logprobs=logprobs,
        reference_logprobs=reference,
        token_counts=[row[0].token_count for row in generations],
    )
    assert metrics["kl_to_reference"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["win_rate"] == 0.5  # every pair ties


def test_wilson_interval_matches_newcombes_worked_values():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II, method 3.
    for (wins, n), (low, high) in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        assert wilson_interval(wins, n) == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))
    assert wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(1, 0)
    assert doctest.testmod(policy_eval).failed == 0


def test_evaluate_policy_on_hand_made_numbers():
    rewards = {  # (M=2, N=4) per text set; ensemble means: new [1, 0, 2, 0.5], previous [0, 0, 3, 0.5] → W, T, L, T
        "new": torch.tensor([[1.0, 0.0, 2.0, 1.0], [1.0, 0.0, 2.0, 0.0]]),
        "previous": torch.tensor([[0.0, -1.0, 3.0, 0.5], [0.0, 1.0, 3.0, 0.5]]),
    }

    def score(prompts, texts):
        assert len(prompts) == len(texts) == 4
        return rewards[texts[0]]

    metrics = evaluate_policy(
        prompts=["p"] * 4,
        new_texts=["new", "ab", "abcd", "a"],  # texts[0] names the reward table; lengths 3, 2, 4, 1
        previous_texts=["previous", "x", "y", "z"],  # lengths 8, 1, 1, 1
        reward_model_score=score,
        new_logprobs=torch.tensor([-1.0, -2.0, -3.0, -4.0]),
        reference_logprobs=torch.tensor([-1.5, -2.0, -2.0, -5.0]),  # log ratios 0.5, 0, −1, 1
        token_counts=[3, 2, 5, 1],
    )
    assert metrics["n"] == 4
    assert metrics["reward_new"] == pytest.approx(3.5 / 4)
    assert metrics["reward_previous"] == pytest.approx(3.5 / 4)
    assert metrics["reward_gain"] == pytest.approx(0.0)
    assert metrics["win_rate"] == 0.5  # 1 win + 2 ties × ½ of 4
    assert (metrics["win_rate_low"], metrics["win_rate_high"]) == pytest.approx(wilson_interval(2, 4))
    assert metrics["kl_to_reference"] == pytest.approx(0.125)
    std = math.sqrt(sum((x - 0.125) ** 2 for x in [0.5, 0.0, -1.0, 1.0]) / 3)
    assert metrics["kl_std_error"] == pytest.approx(std / 2)
    assert metrics["mean_tokens_new"] == 2.75
    assert metrics["mean_chars_new"] == 2.5 and metrics["mean_chars_previous"] == 2.75


def test_evaluate_policy_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one entry per prompt"):
        evaluate_policy(
            prompts=["a", "b"],
            new_texts=["x"],
            previous_texts=["y", "z"],
            reward_model_score=lambda p, r: torch.zeros(1, len(r)),
            new_logprobs=torch.zeros(2),
            reference_logprobs=torch.zeros(2),
            token_counts=[1, 1],
        )
