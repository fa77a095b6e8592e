"""Is a new policy better than the previous one, and how far did it move from its reference?

Read top to bottom: :func:`sequence_logprobs` (the one part that runs a model) →
:func:`evaluate_policy` (pure metrics over plain lists and tensors).

The KL term is the standard Monte-Carlo estimator per sequence: for responses y_n sampled from π_new,

    KL(π_new ‖ π_ref) ≈ 1/N Σ_n [log π_new(y_n | x_n) − log π_ref(y_n | x_n)]

(unbiased for the sequence-level KL averaged over the prompts; Schulman, "Approximating KL divergence", 2020, the
"k1" estimator; the quantity RLHF papers report, e.g. Stiennon et al. 2020 §3.4). Single terms can be negative and
the estimate is noisy, so its standard error is reported beside it; it is only meaningful when the responses really
were sampled from π_new with the sampling settings (temperature 1, no top-k / top-p) that define π_new.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from preference.stats import wilson_interval

from .generation.text import prompt_token_ids

RewardScoreFn = Callable[[Sequence[str], Sequence[str]], torch.Tensor]
"""``score(prompts, responses) -> (M, N)`` per-member rewards, e.g. ``RewardModel.score``."""


@torch.no_grad()
def sequence_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    batch_size: int = 16,
    end_with_eos: bool | Sequence[bool] = False,
) -> torch.Tensor:
    """log π(response | prompt) summed over the response's tokens: shape (B,), float32, on the CPU.

    The prompt is formatted exactly as :func:`training.ml.generation.generate_candidates` formats it (chat template,
    user message, generation prompt), the response is tokenized without special tokens and appended, and only
    response tokens are counted. ``end_with_eos`` (one flag, or one per response) appends the eos token, whose
    probability belongs to a response that ended with it (``Generation.finish_reason == "eos"``).

    The response is re-tokenized from its text, which for most tokenizers gives the ids that were generated; where
    it does not, both models still score the same token sequence.
    """
    if len(prompts) != len(responses):
        raise ValueError("prompts and responses differ in length")
    flags = [end_with_eos] * len(responses) if isinstance(end_with_eos, bool) else list(end_with_eos)
    if len(flags) != len(responses):
        raise ValueError("end_with_eos needs one flag per response")
    rows = []  # (token ids, index of the first response token)
    for prompt, response, eos in zip(prompts, responses, flags, strict=True):
        context = prompt_token_ids(tokenizer, prompt)
        answer = tokenizer(response, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
        rows.append((context + answer, len(context)))
    return response_logprobs(model, rows, pad_id=_pad_id(tokenizer), batch_size=batch_size)


@torch.no_grad()
def response_logprobs(
    model: PreTrainedModel, rows: Sequence[tuple[list[int], int]], *, pad_id: int, batch_size: int = 16
) -> torch.Tensor:
    """Σ_t log π(y_t | y_<t) over each row's tokens from index ``first`` on, for rows ``(token ids, first)``:
    shape (B,), float32, on the CPU. How the rows were tokenized is the caller's business (generation's prompt
    format here, TRL's in :func:`training.ml.policy.dpo_logprobs`).

    Sequences are right-padded (every real token keeps positions 0..L−1; padding comes after and is masked out) and
    batched by length, so a value does not depend on its batch. The model is put in eval mode for the call and its
    training mode is restored after.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.zeros(len(rows))  # (B,)
    order = sorted(range(len(rows)), key=lambda r: len(rows[r][0]))  # similar lengths share a batch
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(rows[r][0]) for r in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (b, T), right-padded
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            response_mask = torch.zeros((len(batch), width), dtype=torch.bool)  # True at response tokens
            for i, r in enumerate(batch):
                ids, first = rows[r]
                input_ids[i, : len(ids)] = torch.tensor(ids)
                attention_mask[i, : len(ids)] = 1
                response_mask[i, first : len(ids)] = True
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits  # (b,T,V)
            # Position t−1 predicts token t: (b, T−1, V) against targets (b, T−1).
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1).cpu()
            token_logprobs = logprobs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (b, T−1)
            out[batch] = (token_logprobs * response_mask[:, 1:]).sum(-1)
    finally:
        model.train(was_training)
    return out


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def evaluate_policy(
    *,
    prompts: Sequence[str],
    new_texts: Sequence[str],
    previous_texts: Sequence[str],
    reward_model_score: RewardScoreFn,
    new_logprobs: torch.Tensor,
    reference_logprobs: torch.Tensor,
    token_counts: Sequence[int],
) -> dict[str, float | int | list[float]]:
    """Metrics of a new policy's responses next to the previous policy's, one response of each per prompt.

    ``new_logprobs`` / ``reference_logprobs`` (N,) are log π_new(y) and log π_ref(y) of the *new* responses
    (:func:`sequence_logprobs`); ``token_counts`` (N,) are the new responses' lengths in tokens
    (``Generation.token_count``).

    Returns ``reward_new`` / ``reward_previous`` (mean ensemble-mean reward), ``reward_gain``, ``win_rate`` of new
    over previous by ensemble-mean reward (ties count half) with its Wilson 95 % interval (``win_rate_low``,
    ``win_rate_high``),
    ``kl_to_reference`` (the Monte-Carlo estimator in the module docstring) and ``kl_std_error``,
    ``mean_tokens_new``, ``mean_chars_new``, ``mean_chars_previous``, and ``n``.
    """
    n = len(prompts)
    if n == 0:
        raise ValueError("nothing to evaluate: no prompts")
    sizes = {len(new_texts), len(previous_texts), len(new_logprobs), len(reference_logprobs), len(token_counts)}
    if sizes != {n}:
        raise ValueError("prompts, texts, log-probs and token counts must all have one entry per prompt")
    log_ratio = torch.as_tensor(new_logprobs, dtype=torch.float64) - torch.as_tensor(
        reference_logprobs, dtype=torch.float64
    )  # (N,) one Monte-Carlo term per sampled response
    return {
        **reward_comparison(prompts, new_texts, previous_texts, reward_model_score),
        "kl_to_reference": float(log_ratio.mean()),
        "kl_std_error": float(log_ratio.std() / math.sqrt(n)) if n > 1 else 0.0,
        "mean_tokens_new": sum(token_counts) / n,
        "mean_chars_new": sum(len(t) for t in new_texts) / n,
        "mean_chars_previous": sum(len(t) for t in previous_texts) / n,
    }


def reward_comparison(
    prompts: Sequence[str], new: Sequence, previous: Sequence, reward_model_score: RewardScoreFn
) -> dict[str, float | int]:
    """The reward model's verdict on one new and one previous output per prompt (texts, or images for an image
    reward model): ``n``, ``reward_new`` / ``reward_previous`` (mean ensemble-mean reward), ``reward_gain`` and the
    ``win_rate`` of new over previous (ties count half) with its Wilson 95 % interval (``win_rate_low``,
    ``win_rate_high``)."""
    n = len(prompts)
    new_reward = torch.as_tensor(reward_model_score(prompts, new), dtype=torch.float64).mean(0)  # (M, N) → (N,)
    previous_reward = torch.as_tensor(reward_model_score(prompts, previous), dtype=torch.float64).mean(0)
    wins = float((new_reward > previous_reward).sum() + 0.5 * (new_reward == previous_reward).sum())
    return {
        "n": n,
        "reward_new": float(new_reward.mean()),
        "reward_previous": float(previous_reward.mean()),
        "reward_gain": float((new_reward - previous_reward).mean()),
        "win_rate": wins / n,
        **dict(zip(("win_rate_low", "win_rate_high"), wilson_interval(wins, n), strict=True)),
    }
