"""Load the offline image demo (``training.digits_demo``): train the digits models once, then create the image
project "Demo: handwritten digits" beside the text demo. Safe to run again: the models are cached under
``VAR_DIR/models`` and the project's rows are found, not added twice.

    python manage.py digits_demo                 # bin/demo runs it after demo_load
    python manage.py digits_demo --epochs 10     # a quicker, blurrier generator (bin/demo --check)
"""

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from annotation.management.commands.demo_load import DEMO_USERS, demo_users
from annotation.models import Candidate, Comparison, Prompt
from training.digits_demo import (
    GENERATOR_EPOCHS,
    digits_demo_folder,
    digits_demo_load,
    digits_demo_prepare,
)
from training.ml.digits import CLASSIFIER_MANIFEST


class Command(BaseCommand):
    help = "Train the digits demo's models (once, cached) and load the image demo project; safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=16, help="Image side in pixels (divisible by 4).")
        parser.add_argument(
            "--epochs", type=int, default=GENERATOR_EPOCHS, help="Generator training epochs (15 steps each)."
        )

    def handle(self, *args, size, epochs, **options):
        import torch

        # The models are tiny, so extra threads only add synchronisation (one thread was the fastest by far on a
        # busy 2-core machine; bench/README.md).
        torch.set_num_threads(1)
        models_dir = Path(settings.VAR_DIR) / "models"
        folder = digits_demo_folder(models_dir, size=size, epochs=epochs)
        if not (folder / "generator").is_dir():
            self.stdout.write(
                f"Training the digits demo's models into {folder} ({epochs} epochs). First run only: the full "
                "60 epochs take about 3 minutes on 2 CPU cores; later runs reuse them."
            )
        bars: dict[str, tqdm] = {}

        def progress(name: str, step: int, total: int) -> None:
            bar = bars.get(name) or bars.setdefault(
                name, tqdm(desc=f"training the {name}", total=total, unit="step", file=self.stderr._out)
            )
            bar.update(step - bar.n)

        try:
            artifacts = digits_demo_prepare(models_dir=models_dir, size=size, epochs=epochs, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
        self._report_training(artifacts)

        users = demo_users()
        started = time.monotonic()
        before = self._counts()
        project = digits_demo_load(
            artifacts=artifacts, owner=users["admin"], users=[(users[name], role) for name, role in DEMO_USERS]
        )
        after = self._counts()
        self.stdout.write(f"Image demo project #{project.pk} {project.name!r} ({time.monotonic() - started:.1f}s):")
        for table in after:
            self.stdout.write(f"  {table}: {after[table] - before[table]} created, {before[table]} already there")
        self.stdout.write(
            f"  simulate the loop on it: python manage.py flywheel --simulate --project {project.pk} --rounds 3"
        )

    def _report_training(self, artifacts) -> None:
        if not artifacts.trained_seconds:
            self.stdout.write(f"Digits demo models: reusing {artifacts.folder} (trained on an earlier run).")
            return
        done = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in artifacts.trained_seconds.items())
        self.stdout.write(f"Digits demo models trained in {sum(artifacts.trained_seconds.values()):.0f}s ({done}).")
        if "classifier" in artifacts.trained_seconds:
            manifest = json.loads((artifacts.classifier / CLASSIFIER_MANIFEST).read_text())
            self.stdout.write(
                f"  classifier (the flywheel's hidden preference): {manifest['test_accuracy']:.1%} accuracy on "
                "449 held-out real digits"
            )
        if "generator" in artifacts.trained_seconds:
            from training.ml.digits import evaluate_digits_generator

            scores = evaluate_digits_generator(artifacts.generator, artifacts.classifier, per_digit=10)
            share = scores["generated_share_above_half"]
            self.stdout.write(
                f"  generator ({artifacts.epochs} epochs): the classifier reads {share:.0%} "
                f"of 100 generated digits as the digit asked for (mean confidence "
                f"{scores['generated_mean_confidence']:.2f}; real digits {scores['real_mean_confidence']:.2f})"
            )

    def _counts(self) -> dict[str, int]:
        from training.digits_demo import PROJECT_NAME

        scope = {"project__name": PROJECT_NAME}
        return {
            "prompts": Prompt.objects.filter(**scope).count(),
            "candidates": Candidate.objects.filter(**scope).count(),
            "comparisons": Comparison.objects.filter(**scope).count(),
        }
