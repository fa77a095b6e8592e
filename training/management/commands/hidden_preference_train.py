"""Train the simulated flywheel's default judge on the public hh-rlhf pairs (``training.hidden_preference``).

python manage.py hidden_preference_train [--backbone builtin:minilm] [--epochs 2] [--force]
"""

import json
import shutil

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from training.hidden_preference import default_hidden_preference_path, hidden_preference_train


class Command(BaseCommand):
    help = "Train the hidden-preference judge for `manage.py flywheel --simulate` on public hh-rlhf pairs (once)."

    def add_arguments(self, parser):
        parser.add_argument("--backbone", default="builtin:minilm")
        parser.add_argument("--epochs", type=float, default=2.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--force", action="store_true", help="Replace an existing judge.")

    def handle(self, *args, backbone, epochs, seed, force, **options):
        path = default_hidden_preference_path()
        if path.exists():
            if not force:
                raise CommandError(f"A judge already exists at {path}; pass --force to train a new one.")
            shutil.rmtree(path)
        bar = tqdm(desc="training the judge", unit="step", file=self.stderr._out)

        def progress(step: int, total: int, loss: float) -> None:
            bar.total = total
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}")

        try:
            path, metrics = hidden_preference_train(backbone=backbone, epochs=epochs, seed=seed, progress=progress)
        finally:
            bar.close()
        summary = {k: metrics.get(k) for k in ("accuracy", "n_pairs", "length_only_accuracy") if k in metrics}
        self.stdout.write(f"Saved the judge at {path}; held-out {json.dumps(summary)}")
