"""Run the loop unattended: simulated annotators label, the scheduler starts policy rounds, a hidden preference
measures the policy after each (``training.flywheel``).

    python manage.py flywheel --simulate --rounds 3
    python manage.py flywheel --simulate --project 3 --rounds 5 --hidden-preference keywords:thanks --noise 0.2

Without ``--project`` it runs on the demo project (``manage.py demo_load``). Without ``--hidden-preference`` the
judge is the reward model ``manage.py hidden_preference_train`` saves from public hh-rlhf pairs, or for an image
project the digit classifier ``manage.py digits_demo`` trains (``digits-classifier:<folder>`` names another).
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands.demo_load import PROJECT_NAME
from annotation.models import Modality, Project
from training.digits_demo import digits_classifier_for, digits_demo_folder
from training.flywheel import HEADER, FlywheelConfig, FlywheelStopped, flywheel_run, format_row
from training.hidden_preference import default_hidden_preference_path
from training.ml.hidden_preference import DIGITS_CLASSIFIER


class Command(BaseCommand):
    help = "Simulate the human-feedback loop headless and print, per round, what it learned."

    def add_arguments(self, parser):
        parser.add_argument("--simulate", action="store_true", required=True, help="Simulated annotators (required).")
        parser.add_argument("--project", type=int, help="Project id (default: the demo project).")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--labels-per-round", type=int, default=FlywheelConfig.labels_per_round)
        parser.add_argument("--annotators", type=int, default=FlywheelConfig.annotators)
        parser.add_argument("--noise", type=float, default=FlywheelConfig.noise, help="Share of coin-flip labels.")
        parser.add_argument("--eval-samples", type=int, default=FlywheelConfig.eval_samples)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--hidden-preference",
            help="keywords:w1,w2, digits-classifier:<folder> or the folder of a saved reward model (default: the "
            "hh-rlhf judge; the digits classifier for an image project).",
        )
        parser.add_argument(
            "--config", type=json.loads, default={}, help="Training settings to set on the project first (JSON)."
        )

    def handle(self, *args, project, hidden_preference, config, **options):
        from training.ml.hidden_preference import hidden_preference_from_spec

        found = (
            Project.objects.filter(pk=project).first()
            if project
            else Project.objects.filter(name=PROJECT_NAME).order_by("pk").first()
        )
        if found is None:
            raise CommandError(f"No project {project}." if project else "No demo project: run manage.py demo_load.")
        spec = hidden_preference or _default_judge(found)
        try:
            judge = hidden_preference_from_spec(spec)
        except ValueError as exc:
            hint = "" if hidden_preference else f" Make it once with: python manage.py {_judge_command(found)}"
            raise CommandError(f"{exc}{hint}") from exc
        if config:
            found.training_settings = {**found.training_settings, **config}
            found.save(update_fields=["training_settings"])
        settings = FlywheelConfig(
            rounds=options["rounds"],
            labels_per_round=options["labels_per_round"],
            annotators=options["annotators"],
            noise=options["noise"],
            eval_samples=options["eval_samples"],
            seed=options["seed"],
        )
        self.stdout.write(f"Project #{found.pk} {found.name!r}; hidden preference {judge.name}")
        self.stdout.write(HEADER)
        try:
            flywheel_run(
                project=found, preference=judge, config=settings, on_row=lambda row: self.stdout.write(format_row(row))
            )
        except FlywheelStopped as exc:
            raise CommandError(str(exc)) from exc


def _default_judge(project: Project) -> str:
    """Text: the hh-rlhf reward model. Images: the digits classifier trained beside the project's generator (the
    digits demo), else the one ``manage.py digits_demo`` caches by default."""
    if project.modality != Modality.IMAGE:
        return str(default_hidden_preference_path())
    classifier = digits_classifier_for(project) or (
        digits_demo_folder(Path(settings.VAR_DIR) / "models") / "classifier"
    )
    return f"{DIGITS_CLASSIFIER}{classifier}"


def _judge_command(project: Project) -> str:
    return "digits_demo" if project.modality == Modality.IMAGE else "hidden_preference_train"
