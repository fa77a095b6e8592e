"""Fixtures for the ML core's tests: no Django, no network, tiny models built here.

Environment variables are set before transformers is imported anywhere, so nothing can reach a hub.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import importlib.util

import pytest

if importlib.util.find_spec("torch") is not None:
    import torch

    # The models here are tiny: one thread is fastest, and on a shared 2-core machine extra threads only
    # oversubscribe (measured: 45 training steps took 11 s with the default thread count under load, 1 s with one).
    torch.set_num_threads(1)

from .synthetic import CUE, FILLER_A, FILLER_B, MARKER, build_tiny_backbone, build_tiny_causal_lm


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """Path of a saved 2-layer BERT (hidden 32) and a word-level tokenizer trained in the test: a local 'model id'."""
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"), words=[*FILLER_A, *FILLER_B, MARKER, CUE])


@pytest.fixture(scope="session")
def tiny_causal_backbone(tmp_path_factory):
    """A 2-layer Llama (hidden 32) with an eos token: last-token pooling, as decoder reward models use."""
    return build_tiny_backbone(
        tmp_path_factory.mktemp("tiny-llama"), words=[*FILLER_A, *FILLER_B, MARKER, CUE], arch="llama"
    )


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """A 2-layer LlamaForCausalLM (hidden 32) with a word-level tokenizer and a chat template: a local policy."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), words=[*FILLER_A, *FILLER_B, MARKER, CUE])
