"""Researchers try and take away policy versions: sample an answer, download the weights.

**Sampling** runs in the web process with the model cache of ``training.model_cache``; it needs the model stack
(``requirements-ml.txt``) in that process, and says so with a 409 where it is missing. Each sample records its seed,
so the same request with the same seed gives the same answer (``training.ml.generation.text``).

**Downloads** are zip archives of the version's artifact: ``merged`` (full weights and tokenizer, loadable with
plain ``AutoModelForCausalLM.from_pretrained``) or ``adapter`` (the LoRA adapter, for ``PeftModel.from_pretrained``
on the base model). The archive is written to a temporary file first (weights are hundreds of MB; memory stays
flat) and streamed from there.
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path

from . import registry
from .model_cache import cached_model
from .models import ModelKind, ModelVersion, VersionStatus

PROMPT_MAX_CHARS = 20_000
MAX_NEW_TOKENS = 1024
PARTS = ("merged", "adapter")


class PolicyServingError(Exception):
    """Why a version cannot be sampled or downloaded, for a person; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None):
        self.message, self.field = message, field
        super().__init__(message)


def policy_sample(
    *, version: ModelVersion, prompt: str, max_new_tokens: int, temperature: float, top_p: float, seed: int
) -> dict:
    """One answer of the policy ``version`` to ``prompt`` (a user message)."""
    path = _artifact(version)
    if version.project.modality != "text":
        raise PolicyServingError(
            f"Sampling from the dashboard is built for text policies; this is a {version.project.modality} "
            "generator: download it and run it with diffusers."
        )
    if len(prompt) > PROMPT_MAX_CHARS:
        raise PolicyServingError(f"The prompt is {len(prompt)} characters; at most {PROMPT_MAX_CHARS}.", field="prompt")
    if importlib.util.find_spec("torch") is None:
        raise PolicyServingError("This web process has no model stack (torch); install requirements-ml.txt here.")
    from training.ml.generation.text import SamplingConfig, generate_candidates, load_causal_lm

    model, tokenizer = cached_model(path, lambda p: load_causal_lm(str(p)))
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=1)
    [[answer]] = generate_candidates(model, tokenizer, [prompt], k=1, sampling=sampling, seeds=[[seed]])
    return {
        "model_version": version.pk,
        "version": version.version,
        "text": answer.text,
        "seed": answer.seed,
        "tokens": answer.token_count,
        "finish_reason": answer.finish_reason,
    }


def policy_archive(*, version: ModelVersion, part: str) -> tuple[tempfile.SpooledTemporaryFile, str]:
    """A zip of the version's ``merged`` weights or its LoRA ``adapter``, rewound, and its file name."""
    if part not in PARTS:
        raise PolicyServingError(f"part must be one of {', '.join(PARTS)}.", field="part")
    root = _artifact(version)
    base = root / "adapter" if part == "adapter" else root
    if part == "adapter":
        if not base.is_dir():
            raise PolicyServingError(
                f"Policy version {version.version} was a full fine-tune: it has no LoRA adapter; download 'merged'.",
                field="part",
            )
        files = sorted(p for p in base.rglob("*") if p.is_file())
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file() and "adapter" not in p.relative_to(root).parts)
    archive = tempfile.SpooledTemporaryFile(max_size=16 * 2**20)
    # Weights barely compress; storing them keeps the archive quick to build.
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for file in files:
            zf.write(file, file.relative_to(base).as_posix())
    archive.seek(0)
    return archive, f"project-{version.project_id}-policy-v{version.version}-{part}.zip"


def _artifact(version: ModelVersion) -> Path:
    if version.kind != ModelKind.POLICY:
        raise PolicyServingError(f"Version {version.version} is a {version.kind} model, not a policy.")
    if version.status != VersionStatus.READY:
        raise PolicyServingError(f"Policy version {version.version} is {version.status}.")
    path = registry.artifact_location(version)
    if not path.is_dir():
        raise PolicyServingError(f"The artifact of policy version {version.version} is missing at {path}.")
    return path
