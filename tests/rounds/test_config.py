"""The policy loop's training settings are validated like the reward model's: every bad value names its key."""

import pytest

from training.config import ConfigInvalid, round_config_build


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"loss_type": "kto"}, "loss_type", "Must be one of sigmoid, ipo, robust, hinge."),
        ({"candidates_per_prompt": 1}, "candidates_per_prompt", "Must be at least 2"),
        ({"max_new_tokens": 5000}, "max_new_tokens", "Must be at most 4096."),
        ({"prompt_selection": "oldest"}, "prompt_selection", "Must be one of unused, recent, random."),
        ({"reference": "sft"}, "reference", "Must be one of base, previous."),
        ({"temperature": 0}, "temperature", "Must be greater than 0."),
        ({"top_p": 1.5}, "top_p", "Must be at most 1.0."),
        ({"policy_max_steps": 0}, "policy_max_steps", "Must be -1"),
        ({"policy": "../outside"}, "policy", ""),
        ({"schedule_every_hours": -1}, "schedule_every_hours", "Must not be negative."),
        ({"warmup_ratio": 1.0}, "warmup_ratio", "Must be at least 0 and less than 1."),
        ({"policy_gradient_checkpointing": "yes"}, "policy_gradient_checkpointing", ""),
    ],
)
def test_a_bad_loop_setting_is_refused_naming_its_key(values, key, message):
    with pytest.raises(ConfigInvalid) as refused:
        round_config_build(project_settings=values)
    assert list(refused.value.errors) == [key]
    assert refused.value.errors[key][0].startswith(message)


def test_loop_settings_have_working_defaults_and_take_nulls_where_they_mean_something():
    config = round_config_build(project_settings={"policy": "builtin:smollm2", "policy_lora_r": None})
    assert (config.policy, config.policy_lora_r, config.loss_type, config.candidates_per_prompt) == (
        "builtin:smollm2",
        None,
        "sigmoid",
        4,
    )


def test_gradient_checkpointing_reaches_the_policy_update(monkeypatch):
    # What the round's optimise step hands the modality (config.snapshot()) sets TRL's switch; the training itself
    # with the switch on is tests/training/test_policy.py's.
    import training.ml.policy as policy
    from training.ml.modality.text import TextModality

    assert round_config_build(project_settings={}).policy_gradient_checkpointing is False
    config = round_config_build(project_settings={"policy_gradient_checkpointing": True})
    seen = {}

    def train_policy_recorded(pairs, policy_config, progress=None):
        seen["checkpointing"] = policy_config.gradient_checkpointing
        raise StopIteration  # the switch is what this test is about, not the training

    monkeypatch.setattr(policy, "train_policy", train_policy_recorded)
    with pytest.raises(StopIteration):
        TextModality().optimise(
            start="unused", reference=None, pairs=[], prompts=[], reward_score=None,
            settings=config.snapshot(), seed=0, progress=None,
        )  # fmt: skip
    assert seen == {"checkpointing": True}
