"""Policy optimisation (DPO through TRL) on a tiny causal LM built in the test: learning, losses, save / load."""

import dataclasses
import math
import re
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig

from training.ml import policy
from training.ml.policy import (
    LOSS_TYPES,
    PolicyPair,
    PolicyTrainingConfig,
    chat_token_ids,
    dpo_logprobs,
    implicit_reward_margins,
    load_policy,
    load_tokenizer,
    read_manifest,
    save_policy,
    train_policy,
)

from .synthetic import MARKER, marker_judgments

pytestmark = pytest.mark.slow


def marker_pairs(n: int, *, seed: int) -> list[PolicyPair]:
    """The chosen response contains MARKER, the rejected one a filler word in its place (same length)."""
    pairs = []
    for record in marker_judgments(n, seed=seed):
        winner = record.winner
        loser = next(c for c in record.candidates if c != winner)
        pairs.append(PolicyPair(record.prompt_text, record.candidates[winner], record.candidates[loser]))
    return pairs


def swapped(pairs: list[PolicyPair]) -> list[PolicyPair]:
    return [dataclasses.replace(p, chosen=p.rejected, rejected=p.chosen) for p in pairs]


@pytest.fixture(scope="module")
def pairs():
    return marker_pairs(64, seed=1)


@pytest.fixture(scope="module")
def lora_run(tiny_causal_lm, pairs):
    """LoRA DPO on 'the response with MARKER is better': 4 epochs of 8 batches, with its progress reports."""
    steps = []
    config = PolicyTrainingConfig(
        model=tiny_causal_lm, learning_rate=1e-2, num_epochs=4, batch_size=8, max_length=64, logging_steps=8
    )
    model = train_policy(pairs, config, progress=lambda s, t, loss: steps.append((s, t, loss)))
    return model, steps


def test_dpo_raises_the_implicit_reward_margin_from_zero(lora_run, pairs, tiny_causal_lm):
    model, _ = lora_run
    start = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    before = implicit_reward_margins(start, start, model.tokenizer, pairs, beta=0.1)
    assert torch.equal(before, torch.zeros(len(pairs)))  # π = π_ref before the first step
    after = implicit_reward_margins(model.model, None, model.tokenizer, pairs, beta=0.1)
    assert after.mean() > 0.5
    assert (after > 0).float().mean() > 0.9
    held_out = implicit_reward_margins(model.model, None, model.tokenizer, marker_pairs(32, seed=2), beta=0.1)
    assert (held_out > 0).float().mean() > 0.9
    # The adapter-disabled policy *is* the starting policy, so an explicit reference gives the same margins.
    explicit = implicit_reward_margins(model.model, start, model.tokenizer, pairs, beta=0.1)
    assert torch.allclose(explicit, after, atol=1e-4)


def test_swapping_chosen_and_rejected_flips_the_margin(lora_run, pairs):
    model, _ = lora_run
    margins = implicit_reward_margins(model.model, None, model.tokenizer, pairs[:8], beta=0.1)
    flipped = implicit_reward_margins(model.model, None, model.tokenizer, swapped(pairs[:8]), beta=0.1)
    assert torch.allclose(flipped, -margins)


def test_training_changes_the_lora_parameters_and_nothing_else(lora_run, tiny_causal_lm):
    model, _ = lora_run
    start = dict(AutoModelForCausalLM.from_pretrained(tiny_causal_lm).named_parameters())
    lora = {name: p for name, p in model.model.named_parameters() if "lora_" in name}
    assert lora and all(p.requires_grad for p in lora.values())
    # PEFT starts every B at zero; all of them moved.
    assert all(p.abs().sum() > 0 for name, p in lora.items() if "lora_B" in name)
    for name, param in model.model.get_base_model().named_parameters():
        if "lora_" not in name:
            assert torch.equal(param, start[name.replace(".base_layer", "")]), f"{name} changed"


def test_progress_and_metrics_come_from_trls_rewards(lora_run, pairs):
    model, steps = lora_run
    assert [s for s, _, _ in steps] == list(range(1, 33))
    assert all(total == 32 for _, total, _ in steps)
    assert steps[0][2] == pytest.approx(0.6931, abs=1e-3)  # log 2: the policy starts at the reference
    assert steps[-1][2] < 0.5
    metrics = model.metrics
    assert metrics["steps"] == 32 and metrics["pairs"] == 64 and metrics["pairs_dropped"] == 0
    assert metrics["reward_margin"] > 0.5 and metrics["reward_accuracy"] > 0.9
    assert metrics["pairs_by_source"] == {"human": 64}


def test_our_margin_equals_trls_logged_margin_against_an_explicit_reference(tiny_causal_lm, pairs, tmp_path):
    """A reference that differs from the policy: with a zero learning rate the policy stays put, so TRL's logged
    rewards/margins of a one-batch step is exactly the mean of implicit_reward_margins over the same pairs."""
    reference = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    torch.manual_seed(3)
    with torch.no_grad():
        for param in reference.parameters():
            param.add_(0.05 * torch.randn_like(param))
    reference.save_pretrained(tmp_path / "ref")
    AutoTokenizer.from_pretrained(tiny_causal_lm).save_pretrained(tmp_path / "ref")
    config = PolicyTrainingConfig(
        model=tiny_causal_lm, reference=str(tmp_path / "ref"), learning_rate=0.0, max_steps=1, batch_size=16
    )
    model = train_policy(pairs[:16], config)
    ours = implicit_reward_margins(model.model, reference, model.tokenizer, pairs[:16], beta=0.1)
    assert ours.abs().mean() > 0.01  # the reference really differs
    assert model.metrics["reward_margin"] == pytest.approx(ours.mean().item(), abs=1e-5)


def test_pair_weights_decide_how_often_a_pair_is_drawn(tiny_causal_lm, pairs):
    """The same pairs twice, once as labelled (weight 1) and once swapped (weight 0): only the first are learned.
    With equal weights the two halves would cancel out."""
    contradicting = pairs[:32] + [dataclasses.replace(p, weight=0.0, source="rm") for p in swapped(pairs[:32])]
    config = PolicyTrainingConfig(model=tiny_causal_lm, learning_rate=1e-2, num_epochs=2, batch_size=8)
    model = train_policy(contradicting, config)
    margins = implicit_reward_margins(model.model, None, model.tokenizer, pairs[:32], beta=0.1)
    assert (margins > 0).all()
    assert model.metrics["pairs_by_source"] == {"human": 32, "rm": 32}


def test_a_run_leaves_no_files_behind(tiny_causal_lm, pairs, tmp_path, monkeypatch):
    from datasets.fingerprint import get_temporary_cache_files_directory

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the run's scratch folder goes
    monkeypatch.setattr(tempfile, "tempdir", None)
    shared = Path(get_temporary_cache_files_directory())  # datasets' per-process cache for in-memory datasets
    before = set(shared.iterdir())
    train_policy(pairs[:8], PolicyTrainingConfig(model=tiny_causal_lm, max_steps=2, batch_size=4))
    assert set(shared.iterdir()) == before
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_each_loss_type_trains_a_step(tiny_causal_lm, pairs, loss_type):
    smoothing = {"robust": 0.1, "exo_pair": 1e-3}.get(loss_type, 0.0)
    config = PolicyTrainingConfig(
        model=tiny_causal_lm, loss_type=loss_type, label_smoothing=smoothing, max_steps=1, batch_size=4
    )
    model = train_policy(pairs[:8], config)
    assert model.metrics["steps"] == 1 and torch.isfinite(torch.tensor(model.metrics["final_loss"]))


def test_gradient_checkpointing_trades_memory_not_results(tiny_causal_lm, pairs):
    # The round setting policy_gradient_checkpointing: recomputed activations, the same steps.
    losses = []
    for checkpointing in (False, True):
        config = PolicyTrainingConfig(
            model=tiny_causal_lm, max_steps=2, batch_size=4, logging_steps=1, gradient_checkpointing=checkpointing
        )
        losses.append(train_policy(pairs[:8], config).metrics["final_loss"])
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)


def mixed_length_pairs(pairs: list[PolicyPair]) -> list[PolicyPair]:
    """Pairs whose lengths differ a lot and are not in length order, so batches carry padding."""
    return [
        dataclasses.replace(p, chosen=" ".join([p.chosen] * (1 + i % 3)), rejected=" ".join([p.rejected] * (3 - i % 3)))
        for i, p in enumerate(pairs)
    ]


def test_our_losses_equal_those_of_trls_dpo_trainer_as_shipped(tiny_causal_lm, pairs):
    """Ours precomputes the reference in length order and scores only response tokens on a CPU; TRL as shipped runs
    the reference every step over every position. Same model, pairs, batches and seed: the same loss at every step
    (reference log-probs handed back to the wrong pairs change them: checked by breaking the reordering)."""
    from datasets import Dataset
    from peft import LoraConfig, TaskType
    from trl import DPOTrainer

    mixed = mixed_length_pairs(pairs[:12])
    config = PolicyTrainingConfig(model=tiny_causal_lm, learning_rate=1e-2, max_steps=3, batch_size=4, max_length=64)
    ours = []
    train_policy(mixed, config, progress=lambda step, total, loss: ours.append(loss))

    rows = policy._conversations(mixed).remove_columns("weight").to_dict()
    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, target_modules="all-linear")
    with tempfile.TemporaryDirectory() as scratch:
        args = DPOConfig(
            output_dir=scratch,
            per_device_train_batch_size=4,
            learning_rate=1e-2,
            max_steps=3,
            lr_scheduler_type="linear",
            max_length=64,
            seed=0,
            bf16=False,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
        )
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_causal_lm),
            args=args,
            train_dataset=Dataset.from_dict(rows),
            processing_class=policy.load_tokenizer(tiny_causal_lm),
            peft_config=lora,
        )
        trainer.train()
    trl_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert not args.precompute_ref_log_probs
    assert len(ours) == len(trl_losses) == 3
    assert ours == pytest.approx(trl_losses, abs=1e-4)
    assert ours[0] == pytest.approx(math.log(2), abs=1e-5)  # a fresh adapter: the policy is its reference
    assert ours[-1] != pytest.approx(ours[0], abs=1e-3)  # and it moved


def test_on_a_cpu_the_lm_head_scores_only_response_tokens(tiny_causal_lm, pairs, monkeypatch):
    """TRL projects every position through the LM head unless Triton runs; ours scores just the labelled ones.
    Fails when a TRL upgrade moves the switch, instead of quietly tripling the head's work."""
    import trl.trainer.utils as trl_utils

    scored, labelled = [], []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, weight, bias, targets, *rest):
        scored.append(hidden.shape[0])
        return apply(hidden, weight, bias, targets, *rest)

    compute_loss = policy._TandemDPOTrainer.compute_loss

    def counting_compute_loss(self, model, inputs, *args, **kwargs):
        labelled.append(int(inputs["completion_mask"][:, 1:].sum()))  # the positions whose next token is a label
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)
    monkeypatch.setattr(policy._TandemDPOTrainer, "compute_loss", counting_compute_loss)
    config = PolicyTrainingConfig(model=tiny_causal_lm, max_steps=2, batch_size=4, max_length=64)
    train_policy(mixed_length_pairs(pairs[:8]), config)
    assert len(labelled) == 2
    training_calls = scored[-2:]  # after the reference pre-pass
    assert training_calls == labelled
    assert trl_utils._use_triton(torch.device("cpu")) is False  # the switch is TRL's own again after the run


def test_loss_types_are_the_ones_trl_documents():
    help_text = next(f for f in dataclasses.fields(DPOConfig) if f.name == "loss_type").metadata["help"]
    assert set(LOSS_TYPES) == set(re.findall(r"`'(\w+)'`", help_text))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"loss_type": "dpo"}, "unknown loss_type"),
        ({"algorithm": "ppo"}, "unknown algorithm"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, "robust"),
        ({"loss_type": "exo_pair"}, "exo_pair"),
        ({"lora_dropout": 0.1}, "disable_dropout"),
    ],
)
def test_a_bad_config_fails_before_training(changes, message):
    with pytest.raises(ValueError, match=message):
        PolicyTrainingConfig(model="unused", **changes)


def test_saved_policy_loads_without_peft_and_its_adapter_loads_with_peft(lora_run, tiny_causal_lm, pairs, tmp_path):
    model, _ = lora_run
    path = save_policy(model, tmp_path / "policy-v1", extra={"code_version": "abc123"})
    prompt_ids, response_ids = chat_token_ids(model.tokenizer, pairs[0].prompt, pairs[0].chosen)
    input_ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        expected = model.model(input_ids=input_ids).logits
        plain = AutoModelForCausalLM.from_pretrained(path)
        assert not hasattr(plain, "peft_config")
        assert torch.allclose(plain(input_ids=input_ids).logits, expected, atol=1e-5)
        adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_causal_lm), path / "adapter")
        assert torch.allclose(adapted(input_ids=input_ids).logits, expected, atol=1e-5)
        # TRL patches forward on the instance, bound to the original model; left in place, a copy would run the
        # original's modules (here: with its adapter switched off) instead of its own merged weights.
        merged = model.merged_model()
        with model.model.disable_adapter():
            assert torch.allclose(merged(input_ids=input_ids).logits, expected, atol=1e-5)
        loaded, tokenizer = load_policy(path)
        assert torch.allclose(loaded(input_ids=input_ids).logits, expected, atol=1e-5)
    assert tokenizer.chat_template == model.tokenizer.chat_template
    manifest = read_manifest(path)
    assert manifest["adapter"] == "adapter" and manifest["extra"] == {"code_version": "abc123"}
    assert PolicyTrainingConfig(**manifest["config"]) == model.config
    assert manifest["metrics"]["steps"] == 32 and "trl" in manifest["versions"]
    # Saving merged a copy: the policy in memory still has its adapter, unmerged.
    assert isinstance(model.model, PeftModel)


def test_a_crash_mid_save_leaves_nothing_at_the_final_path(lora_run, tmp_path, monkeypatch):
    model, _ = lora_run

    def crash_after_writing_weights(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(model.tokenizer), "save_pretrained", crash_after_writing_weights)
    with pytest.raises(OSError, match="disk full"):
        save_policy(model, tmp_path / "policy-v2")
    assert list(tmp_path.iterdir()) == []  # neither the final folder nor the staging folder


def test_full_fine_tune_learns_and_saves_without_an_adapter(tiny_causal_lm, pairs, tmp_path):
    config = PolicyTrainingConfig(
        model=tiny_causal_lm, lora_r=None, learning_rate=3e-3, num_epochs=3, batch_size=8, max_length=64
    )
    model = train_policy(pairs, config)
    assert not model.uses_lora
    start = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    margins = implicit_reward_margins(model.model, start, model.tokenizer, pairs, beta=0.1)
    assert margins.mean() > 0.5 and (margins > 0).all()
    path = save_policy(model, tmp_path / "policy-full")
    assert not (path / "adapter").exists() and read_manifest(path)["adapter"] is None
    loaded, _ = load_policy(path)
    assert torch.allclose(
        dpo_logprobs(loaded, model.tokenizer, [pairs[0].prompt], [pairs[0].chosen]),
        dpo_logprobs(model.model, model.tokenizer, [pairs[0].prompt], [pairs[0].chosen]),
        atol=1e-5,
    )


def test_dpo_logprobs_equals_a_hand_loop_over_one_example(tiny_causal_lm, pairs):
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    tokenizer = policy.load_tokenizer(tiny_causal_lm)
    prompt, response = pairs[0].prompt, pairs[0].chosen
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
    )
    ids = tokenizer(text)["input_ids"]
    prompt_len = len(tokenizer("<|user|> " + prompt + " </s> <|assistant|>")["input_ids"])
    expected = 0.0
    with torch.no_grad():
        for t in range(prompt_len, len(ids)):  # every response token, its end-of-turn </s> included
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
            expected += torch.log_softmax(logits, -1)[ids[t]].item()
    assert len(ids) - prompt_len == len(response.split()) + 1
    # Batched with longer and shorter neighbours (padding) and on its own: the same value.
    batch = dpo_logprobs(model, tokenizer, [p.prompt for p in pairs[:5]], [p.chosen for p in pairs[:5]])
    alone = dpo_logprobs(model, tokenizer, [prompt], [response])
    assert alone.item() == pytest.approx(expected, abs=1e-4)
    assert batch[0].item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_rloo_with_a_reward_function_raises_the_reward_of_the_policys_samples(tiny_causal_lm):
    from training.ml.generation.text import SamplingConfig, generate_candidates
    from training.ml.policy import train_policy_rloo

    def marker_share(prompts, completions):
        return [c.split().count(MARKER) / max(len(c.split()), 1) for c in completions]

    prompts = [f"q wa0{i:02d}" for i in range(16)]
    sampling = SamplingConfig(max_new_tokens=8, temperature=1.0, batch_size=64)

    def mean_reward(model, tokenizer) -> float:
        tokenizer.padding_side = "left"
        rows = generate_candidates(model, tokenizer, prompts, k=8, sampling=sampling, base_seed=3)
        return sum(marker_share(None, [g.text for row in rows for g in row])) / (len(prompts) * 8)

    config = PolicyTrainingConfig(
        model=tiny_causal_lm,
        algorithm="rloo",
        learning_rate=2e-2,
        max_steps=30,
        batch_size=8,
        num_generations=4,
        max_completion_length=8,
        beta=0.0,
    )
    steps = []
    trained = train_policy_rloo(prompts, marker_share, config, progress=lambda s, t, loss: steps.append(s))
    before = mean_reward(AutoModelForCausalLM.from_pretrained(tiny_causal_lm), load_tokenizer(tiny_causal_lm))
    after = mean_reward(trained.model, trained.tokenizer)
    assert steps[-1] == 30 and trained.metrics["steps"] == 30
    assert after > before + 0.05, (before, after)
