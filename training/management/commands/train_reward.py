"""Train, evaluate and register a reward model for one project, in this process, with a progress bar.

    python manage.py train_reward --project 3 --backbone /models/minilm --epochs 2 --ensemble-size 3

It is a normal round (trigger "command"): it shows in the API and the admin, it is refused while another round
of the project is live, and its version becomes active on success unless --no-activate.
"""

import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Project
from training import rounds
from training.config import ConfigInvalid
from training.models import RoundStatus, RoundTrigger

# flag → RoundConfig field
OPTIONS = {
    "backbone": ("backbone", str),
    "epochs": ("epochs", float),
    "max_steps": ("max_steps", int),
    "lr": ("learning_rate", float),
    "batch_size": ("batch_size", int),
    "max_length": ("max_length", int),
    "ensemble_size": ("ensemble_size", int),
    "lora_r": ("lora_r", int),
    "eval_fraction": ("eval_fraction", float),
    "tie_policy": ("tie_policy", str),
    "seed": ("seed", int),
}


class Command(BaseCommand):
    help = "Train and evaluate a reward model for a project from its judgments (runs a round in-process)."
    kind: str | None = "reward"

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, required=True, help="Project id.")
        parser.add_argument(
            "--config",
            type=json.loads,
            default={},
            help='More training settings as JSON, e.g. \'{"loss_type": "ipo", "prompts_per_round": 8}\'.',
        )
        for flag, (field, kind) in OPTIONS.items():
            parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, help=f"Overrides {field}.")
        parser.add_argument("--bf16", action="store_true", default=None, help="bfloat16 mixed precision.")
        parser.add_argument("--no-activate", dest="activate", action="store_false", default=None)

    def handle(self, *args, project, **options):
        found = Project.objects.filter(pk=project).first()
        if found is None:
            raise CommandError(f"No project with id {project}.")
        overrides = dict(options["config"])
        overrides |= {field: options[flag] for flag, (field, _) in OPTIONS.items() if options.get(flag) is not None}
        if options.get("bf16"):
            overrides["bf16"] = True
        if options.get("activate") is False:
            overrides["auto_activate"] = False
        try:
            started = rounds.round_start(
                project=found,
                trigger=RoundTrigger.COMMAND,
                kind=options.get("kind") or self.kind,
                overrides=overrides,
                enqueue=False,
            )
        except ConfigInvalid as exc:
            raise CommandError(f"Invalid training settings: {exc}") from exc
        except rounds.RoundError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Round {started.pk} ({started.kind}): training on judgments up to #{started.judgment_max_id}"
        )

        bar = None

        def on_progress(step: str, done: int, total: int, loss: float | None) -> None:
            nonlocal bar
            if step != "training" or total == 0:  # a phase notice (the "training" phase too): no steps yet
                if bar is not None:
                    bar.close()
                    bar = None
                self.stderr.write(f"… {step}")
                return
            if bar is not None and bar.total != total:  # the next model of the round (span model) has its own
                bar.close()
                bar = None
            if bar is None:
                bar = tqdm(total=total, desc="training", unit="step", file=self.stderr._out)
            bar.update(done - bar.n)
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.4f}")

        try:
            finished = rounds.round_run(round_id=started.pk, on_progress=on_progress)
        except KeyboardInterrupt:
            raise CommandError(f"Interrupted; round {started.pk} is cancelled.") from None
        finally:
            if bar is not None:
                bar.close()
        if finished.status != RoundStatus.SUCCEEDED:
            raise CommandError(f"Round {finished.pk} {finished.status}: {finished.error}")
        version = finished.model_version
        self.stdout.write(json.dumps(finished.metrics, indent=2, default=str))
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {version} ({'active' if version.is_active else 'not active'}) at {version.artifact_path}"
            )
        )
