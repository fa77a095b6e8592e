"""Text on the modality interface: a causal LM with a chat template generates (``generation.text``), DPO or RLOO
updates it (``policy``), and the evaluation adds KL to the reference and length (``policy_eval``).

Settings read from the round (``training.config.RoundConfig``): the reward model's ``max_length``,
``learning_rate``, ``warmup_ratio``, ``epochs``, ``max_steps``, ``batch_size``, ``gradient_accumulation_steps``,
``ensemble_size``, ``lora_r``; ``max_new_tokens``, ``temperature``, ``top_p``,
``generation_batch_size``; ``policy_algorithm``, ``loss_type``, ``beta``, ``label_smoothing``,
``policy_learning_rate``, ``policy_epochs``, ``policy_max_steps``, ``policy_batch_size``, ``policy_max_length``,
``policy_gradient_checkpointing``, ``policy_lora_r``, ``candidates_per_prompt``, ``bf16``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from . import Evaluation, Output, OutputPair, Trained


class TextModality:
    name = "text"
    span_rewards = True

    def reward_train(self, pairs, *, backbone, settings, seed, progress):
        from ..reward import RewardTrainingConfig, train_reward_model

        config = RewardTrainingConfig(
            backbone=backbone,
            max_length=settings["max_length"],
            learning_rate=settings["learning_rate"],
            warmup_ratio=settings["warmup_ratio"],
            num_epochs=settings["epochs"],
            max_steps=settings["max_steps"],
            batch_size=settings["batch_size"],
            gradient_accumulation_steps=settings["gradient_accumulation_steps"],
            seed=seed,
            ensemble_size=settings["ensemble_size"],
            lora_r=settings["lora_r"],
            bf16=settings["bf16"],
        )
        return train_reward_model(pairs, config, progress=progress)

    def reward_evaluate(self, model, pairs) -> dict:
        from ..evaluate import evaluate_reward_model

        return evaluate_reward_model(model, pairs)

    def reward_save(self, model, path, *, extra: dict) -> None:
        from ..reward import save_reward_model

        save_reward_model(model, path, extra=extra)

    def reward_load(self, path):
        from ..reward import load_reward_model

        return load_reward_model(path)

    def sampling(self, settings: Mapping) -> dict:
        return {
            "max_new_tokens": settings["max_new_tokens"],
            "temperature": settings["temperature"],
            "top_p": settings["top_p"],
        }

    def generate(self, path, prompts, *, k, sampling, base_seed, batch_size, progress=None):
        from ..generation.text import SamplingConfig, generate_candidates, load_causal_lm

        model, tokenizer = load_causal_lm(path)
        rows = generate_candidates(
            model,
            tokenizer,
            list(prompts),
            k=k,
            sampling=SamplingConfig(**sampling, batch_size=batch_size),
            base_seed=base_seed,
            progress=progress,
        )
        return [[_output(g) for g in row] for row in rows]

    def human_pairs(self, pairs: Sequence) -> list[OutputPair]:
        return [
            OutputPair(
                prompt=p.prompt,
                chosen=Output(prompt_index=-1, seed=0, text=p.chosen),
                rejected=Output(prompt_index=-1, seed=0, text=p.rejected),
                source="human",
            )
            for p in pairs
        ]

    def optimise(self, *, start, reference, pairs, prompts, reward_score, settings, seed, progress) -> Trained:
        from ..policy import PolicyPair, PolicyTrainingConfig, train_policy, train_policy_rloo

        config = PolicyTrainingConfig(
            model=start,
            reference=reference,
            algorithm=settings["policy_algorithm"],
            loss_type=settings["loss_type"],
            beta=settings["beta"],
            label_smoothing=settings["label_smoothing"],
            learning_rate=settings["policy_learning_rate"],
            num_epochs=settings["policy_epochs"],
            max_steps=settings["policy_max_steps"],
            batch_size=settings["policy_batch_size"],
            max_length=settings["policy_max_length"],
            gradient_checkpointing=settings["policy_gradient_checkpointing"],
            lora_r=settings["policy_lora_r"],
            seed=seed,
            bf16=settings["bf16"],
            num_generations=settings["candidates_per_prompt"],
            max_completion_length=settings["max_new_tokens"],
        )
        if config.algorithm == "rloo":
            # RLOO's batch counts completions: policy_batch_size prompts, K samples each.
            config = replace(config, batch_size=config.batch_size * config.num_generations)
            trained = train_policy_rloo(
                list(prompts),
                lambda p, c: reward_score(p, c).mean(0).tolist(),
                config,
                progress=progress,
            )
        else:
            policy_pairs = [
                PolicyPair(prompt=p.prompt, chosen=p.chosen.text, rejected=p.rejected.text, source=p.source)
                for p in pairs
            ]
            trained = train_policy(policy_pairs, config, progress=progress)
        return Trained(model=trained, metrics=trained.metrics)

    def save(self, trained: Trained, path, *, extra: dict) -> None:
        from ..policy import save_policy

        save_policy(trained.model, path, extra=extra)

    def evaluate(self, *, new, previous, reference, prompts, reward_score, settings, base_seed, progress=None):
        from ..generation.text import SamplingConfig, generate_candidates, load_causal_lm
        from ..policy_eval import evaluate_policy, sequence_logprobs

        def phase(name: str, at: float) -> None:
            if progress is not None:
                progress(name, at)

        # Temperature 1 and no nucleus: the answers are samples of the policies themselves, which the KL estimate
        # needs (policy_eval) and which keeps the head-to-head about the models, not the sampler.
        sampling = {**self.sampling(settings), "temperature": 1.0, "top_p": 1.0}
        config = SamplingConfig(**sampling, batch_size=settings["generation_batch_size"])
        texts = list(prompts)
        new_model, tokenizer = load_causal_lm(new)
        previous_model, previous_tokenizer = load_causal_lm(previous)
        phase("generating with the new policy", 0.05)
        new_rows = generate_candidates(new_model, tokenizer, texts, k=1, sampling=config, base_seed=base_seed)
        phase("generating with the previous policy", 0.4)
        old_rows = generate_candidates(
            previous_model, previous_tokenizer, texts, k=1, sampling=config, base_seed=base_seed
        )
        new_out, old_out = [row[0] for row in new_rows], [row[0] for row in old_rows]
        phase("scoring", 0.75)
        reference_model, reference_tokenizer = load_causal_lm(reference)
        answers = [g.text for g in new_out]
        ended = [g.finish_reason == "eos" for g in new_out]
        metrics = evaluate_policy(
            prompts=texts,
            new_texts=answers,
            previous_texts=[g.text for g in old_out],
            reward_model_score=reward_score,
            new_logprobs=sequence_logprobs(new_model, tokenizer, texts, answers, end_with_eos=ended),
            reference_logprobs=sequence_logprobs(
                reference_model, reference_tokenizer, texts, answers, end_with_eos=ended
            ),
            token_counts=[g.token_count for g in new_out],
        )
        return Evaluation(
            metrics=metrics,
            new=[_output(g) for g in new_out],
            previous=[_output(g) for g in old_out],
            sampling=sampling,
        )


def _output(generation) -> Output:
    return Output(
        prompt_index=generation.prompt_index,
        seed=generation.seed,
        text=generation.text,
        metadata={"tokens": generation.token_count, "finish_reason": generation.finish_reason},
    )
