"""K sampled candidates per prompt from a causal LM, each with a seed that reproduces it in any batch.

Read top to bottom: config and result types → prompt formatting (chat template) → per-row seeded sampling (the
Gumbel-max trick as a logits processor) → :func:`generate_candidates` → :func:`load_causal_lm`.

Why our own sampler inside ``model.generate``: transformers samples every row of a batch with ``torch.multinomial``
from one global RNG, so a candidate's tokens depend on which other rows shared its batch (and on how many random
numbers they drew before it). A recorded seed must reproduce *its* candidate whatever batch it is regenerated in
(another batch size, other prompts beside it, other padding). So we decode greedily (``do_sample=False``) over
logits that went through the usual temperature / top-k / top-p warpers and then :class:`_PerRowGumbelNoise`, which
adds Gumbel(0, 1) noise drawn from a ``torch.Generator`` seeded from (the row's candidate seed, the step). The
Gumbel-max trick: for logits l and i.i.d. g_i ~ Gumbel(0, 1), ``argmax_i(l_i + g_i)`` is distributed exactly as
softmax(l) (Gumbel 1954; e.g. Maddison, Tarlow & Minka, "A* Sampling", NeurIPS 2014, §2; Jang, Gu & Poole,
"Categorical Reparameterization with Gumbel-Softmax", ICLR 2017, eq. 1). With l = warped logits (logits / T, with
tokens outside top-k / top-p at −inf) that is exactly what ``do_sample=True`` samples from, one row at a time.

How transformers 5.24 runs it (``generation/utils.py``, checked, not assumed): greedy search and sampling share
``_sample``; ``_get_logits_processor`` builds the processors implied by the generation config (repetition penalty,
min-new-tokens, …, merged from ``model.generation_config``), then appends the caller's ``logits_processor`` list,
and only *if* ``do_sample`` appends its own temperature / top-k / top-p warpers. With ``do_sample=False`` none of
those are added, so ours (temperature → top-k → top-p, the order transformers uses) run after the model's own
processors, exactly where its warpers would, and the last step is ``argmax``. Rows that have finished are fed the
pad token; the stop check may run one step late (only on MPS), and those steps are undone. Our processor keeps no
state: the step is ``input_ids.shape[1]`` minus the (padded) prompt width, the same for every row of a batch.

What "reproduces" means: the same seed, model weights, dtype and device type give the same tokens. Noise is drawn on
the logits' device (a CUDA generator's stream differs from the CPU's), and a different batch shape can change the
logits in their last float bits, which flips a token only when two noisy scores tie to that precision.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from ..backbones import resolve_backbone

MAX_NEW_TOKENS_LIMIT = 4096
"""Upper bound for ``SamplingConfig.max_new_tokens``: a typo must not start an hour-long generation."""

ProgressFn = Callable[[int, int], None]
"""``progress(sequences_done, sequences_total)``, called after every ``generate`` call."""

FinishReason = Literal["eos", "length"]


@dataclass(frozen=True)
class SamplingConfig:
    """How candidates are sampled; saved beside whatever the candidates feed (a round's comparisons)."""

    max_new_tokens: int = 256
    """Most tokens generated per candidate (the eos token included), 1 to 4096."""
    temperature: float = 1.0
    """Logits are divided by this before top-k / top-p; > 0 (use a small value for near-greedy decoding)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches ``top_p``; 1.0 keeps all."""
    top_k: int = 0
    """Keep only the ``top_k`` most likely tokens; 0 keeps all."""
    batch_size: int = 16
    """Sequences per ``model.generate`` call (rows of one padded batch). Changes speed and memory, never the text."""

    def __post_init__(self):
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise ValueError(f"max_new_tokens must be in 1..{MAX_NEW_TOKENS_LIMIT}, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Generation:
    """One sampled candidate, as plain data."""

    prompt_index: int
    """Position of its prompt in the ``prompts`` given to :func:`generate_candidates`."""
    text: str
    """The decoded response, special tokens (the eos) removed."""
    seed: int
    """Regenerates exactly these tokens with the same model, sampling config and prompt, in any batch."""
    token_count: int
    """Tokens generated, the eos token included when ``finish_reason == "eos"``."""
    finish_reason: FinishReason
    """``"eos"``: the model ended the response; ``"length"``: cut at ``max_new_tokens``."""


# --- prompts ------------------------------------------------------------------------------------------------------


def prompt_token_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Token ids the policy sees before its response: the chat template with ``prompt`` as one user message and the
    generation prompt (the assistant header) appended.

    The template writes its own special tokens (bos, role markers), so the text is tokenized without adding more.
    A tokenizer without a chat template (a base model) gets the raw ``prompt``, with its usual special tokens.
    """
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt)["input_ids"]


def candidate_seed(base_seed: int, prompt_index: int, candidate_index: int) -> int:
    """The default seed of candidate ``candidate_index`` of prompt ``prompt_index``: 63 bits of SHA-256, so it is
    the same on every machine and distinct runs (``base_seed``) do not share streams."""
    digest = hashlib.sha256(f"{base_seed}:{prompt_index}:{candidate_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


_MASK64 = (1 << 64) - 1


def _step_seed(seed: int, step: int) -> int:
    """A 64-bit generator seed for (candidate seed, step): SplitMix64's finaliser (Steele, Lea & Flood, OOPSLA 2014)
    over the pair, so neighbouring steps and seeds get unrelated streams."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class _PerRowGumbelNoise(LogitsProcessor):
    """Adds Gumbel(0, 1) noise to each row's scores from that row's own generator, seeded by (seed, step); greedy
    decoding over the result samples softmax(scores) row by row (the Gumbel-max trick, module docstring)."""

    def __init__(self, seeds: Sequence[int], prompt_width: int):
        self.seeds = list(seeds)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, prompt_width + step), scores: (B, V) float32 (generate casts the logits)
        step = input_ids.shape[1] - self.prompt_width
        noise = torch.empty_like(scores)  # (B, V)
        for row, seed in enumerate(self.seeds):
            generator = torch.Generator(device=scores.device).manual_seed(_step_seed(seed, step))
            u = torch.rand(scores.shape[1], generator=generator, device=scores.device, dtype=scores.dtype)
            # u in [0, 1): the clamp keeps log finite; u -> 1 gives a large but finite g.
            noise[row] = -torch.log(-torch.log(u.clamp_min(torch.finfo(scores.dtype).tiny)))
        return scores + noise  # tokens the warpers removed stay at -inf


# --- generation ---------------------------------------------------------------------------------------------------


def _warpers(sampling: SamplingConfig) -> list[LogitsProcessor]:
    """transformers' own warpers, in its order (temperature → top-k → top-p, ``_get_logits_processor``)."""
    warpers: list[LogitsProcessor] = []
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k:
        warpers.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=sampling.top_p))
    return warpers


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token that ends a response: the model's generation config's eos ids and the tokenizer's (chat models
    often end a turn with a token the base config does not list)."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("neither the model's generation config nor the tokenizer defines an eos token")
    return ids


@torch.no_grad()
def generate_candidates(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    k: int,
    sampling: SamplingConfig,
    seeds: Sequence[Sequence[int]] | None = None,
    base_seed: int = 0,
    progress: ProgressFn | None = None,
) -> list[list[Generation]]:
    """``k`` sampled responses to each prompt: ``result[i][j]`` is candidate j of ``prompts[i]``.

    Each prompt is wrapped in the tokenizer's chat template as one user message, with the generation prompt (raw
    text only when the tokenizer has no chat template: a base model; see :func:`prompt_token_ids`). Sequences are
    left-padded into batches of ``sampling.batch_size`` (longest prompts first, so memory peaks in the first batch)
    and sampled with per-row seeds: ``seeds[i][j]`` if given, else ``candidate_seed(base_seed, i, j)``. Either way
    the seed is recorded on the :class:`Generation` and regenerates the same text alone or in any other batch.

    >>> gens = generate_candidates(model, tok, ["Name a colour."], k=2, sampling=SamplingConfig(max_new_tokens=8))
    >>> [(g.seed, g.finish_reason) for g in gens[0]]  # doctest: +SKIP
    [(3148..., 'eos'), (9921..., 'length')]
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if seeds is not None:
        if len(seeds) != len(prompts) or any(len(row) != k for row in seeds):
            raise ValueError("seeds must give k seeds for every prompt")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token; use load_causal_lm or set pad_token")
    eos_ids = _eos_ids(model, tokenizer)
    device = next(model.parameters()).device
    config = GenerationConfig(
        max_new_tokens=sampling.max_new_tokens,
        do_sample=False,  # greedy over Gumbel-perturbed scores *is* the sampling (module docstring)
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=eos_ids,
    )
    warpers = _warpers(sampling)

    prompt_ids = [prompt_token_ids(tokenizer, p) for p in prompts]
    # (prompt index, candidate index, seed), longest prompts first; the order changes no text (per-row seeds).
    items = [
        (i, j, seeds[i][j] if seeds is not None else candidate_seed(base_seed, i, j))
        for i in range(len(prompts))
        for j in range(k)
    ]
    items.sort(key=lambda item: -len(prompt_ids[item[0]]))
    results: list[list[Generation | None]] = [[None] * k for _ in prompts]
    model.eval()
    for start in range(0, len(items), sampling.batch_size):
        batch = items[start : start + sampling.batch_size]
        width = max(len(prompt_ids[i]) for i, _, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (b, width), left-padded
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (i, _, _) in enumerate(batch):
            ids = prompt_ids[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        processors = LogitsProcessorList([*warpers, _PerRowGumbelNoise([s for _, _, s in batch], width)])
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
            logits_processor=processors,
        )
        new_tokens = out[:, width:].cpu()  # (b, n), n <= max_new_tokens; finished rows continue with pad
        for row, (i, j, seed) in enumerate(batch):
            results[i][j] = _to_generation(new_tokens[row].tolist(), eos_ids, tokenizer, prompt_index=i, seed=seed)
        if progress is not None:
            progress(start + len(batch), len(items))
    return results  # type: ignore[return-value]  # every slot is filled above


def _to_generation(
    tokens: list[int], eos_ids: list[int], tokenizer: PreTrainedTokenizerBase, *, prompt_index: int, seed: int
) -> Generation:
    """Cut a row at its first eos (what follows is padding) and decode it."""
    end = next((t for t, token in enumerate(tokens) if token in eos_ids), None)
    if end is None:
        # No eos: the row ran to max_new_tokens (the batch only stops early once every row has ended).
        kept, count, reason = tokens, len(tokens), "length"
    else:
        kept, count, reason = tokens[:end], end + 1, "eos"
    return Generation(
        prompt_index=prompt_index,
        text=tokenizer.decode(kept, skip_special_tokens=True),
        seed=seed,
        token_count=count,
        finish_reason=reason,
    )


# --- loading ------------------------------------------------------------------------------------------------------


def load_causal_lm(
    path: str | os.PathLike, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM (eval mode) and its tokenizer from a folder, a cached hub id or a builtin name
    (``builtin:smollm2``, :mod:`training.ml.backbones`).

    The tokenizer pads on the left (generation appends on the right, so every row's last token must be real) and,
    when it has no pad token, pads with eos (the attention mask hides it). ``dtype`` defaults to float32.
    """
    folder = resolve_backbone(str(path))
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{path}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    return model.to(device or "cpu").eval(), tokenizer
