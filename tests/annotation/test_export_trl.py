"""The TRL shape is what TRL takes: an exported dataset loads with ``datasets`` and trains one step of
``DPOTrainer`` and of ``RewardTrainer`` on tiny models built here from configs (no download)."""

import copy
import os

import pytest

from annotation.exporters import export_request_parse, export_to_folder

from .export_world import judged_project

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

os.environ["HF_HUB_OFFLINE"] = "1"

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token if m['role'] == 'assistant' else '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def _tiny(folder, texts, *, head: str):
    """A 2-layer Llama (hidden 32) and a word-level tokenizer trained on the exported texts."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=1,
    )
    model = (LlamaForCausalLM if head == "causal" else LlamaForSequenceClassification)(config)
    return model, tokenizer


def _export_pairs(tmp_path, form):
    world = judged_project()
    folder = tmp_path / f"pairs-{form}"
    export_to_folder(
        world.project, export_request_parse(shape="pairs", file_format="hf", options={"form": form}), folder
    )
    import datasets

    return datasets.load_from_disk(str(folder))


def _texts(dataset):
    out = []
    for row in dataset:
        for key in ("prompt", "chosen", "rejected"):
            value = row[key]
            out.extend([m["content"] for m in value] if isinstance(value, list) else [value])
    return [*out, "system user assistant :"]


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("form", ["standard", "conversational"])
def test_dpo_trainer_trains_one_step_on_the_exported_pairs(tmp_path, form):
    from trl import DPOConfig, DPOTrainer

    dataset = _export_pairs(tmp_path, form)
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names) and len(dataset) == 16
    model, tokenizer = _tiny(tmp_path / "policy", _texts(dataset), head="causal")
    before = _params(model)
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    reference = copy.deepcopy(model)  # TRL would load it again by name; this one exists only here
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    assert any(not a.equal(b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("form", ["standard", "conversational"])
def test_reward_trainer_trains_one_step_with_the_exported_margins(tmp_path, form):
    from trl import RewardConfig, RewardTrainer

    dataset = _export_pairs(tmp_path, form)
    assert max(dataset["margin"]) == 3.0
    model, tokenizer = _tiny(tmp_path / "reward", _texts(dataset), head="reward")
    before = _params(model)
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    assert any(not a.equal(b) for a, b in zip(before, model.parameters(), strict=True))
