"""Generation backends: candidate responses from a policy (causal LM) for comparisons and policy evaluation."""

from .text import (
    Generation,
    SamplingConfig,
    candidate_seed,
    generate_candidates,
    load_causal_lm,
    prompt_token_ids,
)

__all__ = [
    "Generation",
    "SamplingConfig",
    "candidate_seed",
    "generate_candidates",
    "load_causal_lm",
    "prompt_token_ids",
]
