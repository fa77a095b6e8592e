"""The simulated flywheel's default judge: a reward model trained once on the public hh-rlhf pairs shipped in
``training/data/hh-rlhf`` (MIT), which no project's rounds ever train on, saved under ``VAR_DIR/models``.

    python manage.py hidden_preference_train      # a few minutes on a CPU, once
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

HH_RLHF = Path(__file__).resolve().parent / "data" / "hh-rlhf" / "harmless-base_test.public.jsonl"


def default_hidden_preference_path() -> Path:
    return Path(settings.VAR_DIR) / "models" / "hidden-preference-hh-rlhf"


def hidden_preference_train(
    *, path: Path | None = None, backbone: str = "builtin:minilm", epochs: float = 2.0, seed: int = 0, progress=None
) -> tuple[Path, dict]:
    """Train the judge on hh-rlhf (prompts in hh's ``Human:/Assistant:`` format, recorded in its manifest so the
    judge wraps the prompts it scores the same way), save it atomically and return its folder and held-out
    metrics."""
    from training.ml.evaluate import evaluate_reward_model
    from training.ml.hh_rlhf import HH_PROMPT_TEMPLATE, hh_rlhf_pairs
    from training.ml.reward import RewardTrainingConfig, save_reward_model, train_reward_model

    path = path or default_hidden_preference_path()
    pairs = hh_rlhf_pairs(HH_RLHF, eval_fraction=0.1, seed=seed)
    config = RewardTrainingConfig(
        backbone=backbone, max_length=256, separator="", num_epochs=epochs, batch_size=16, seed=seed
    )
    model = train_reward_model(pairs, config, progress=progress)
    metrics = evaluate_reward_model(model, pairs.eval)
    extra = {"prompt_template": HH_PROMPT_TEMPLATE, "data": "hh-rlhf harmless-base (public subset)", "eval": metrics}
    save_reward_model(model, path, extra=extra)
    return path, metrics
