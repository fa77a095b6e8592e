"""Run a round of a project in this process, with a progress bar: the whole loop when the project's training
settings name a ``policy`` (or with ``--kind policy``), else a reward round.

    python manage.py run_round --project 3 --kind policy --config '{"prompts_per_round": 8, "loss_type": "ipo"}'

Like ``train_reward``, it is a normal round (trigger "command"): it shows in the API and the dashboard and is
refused while another round of the project is live.
"""

from .train_reward import Command as TrainReward


class Command(TrainReward):
    help = "Run a training round (reward, or the whole policy loop) for a project in-process."
    kind = None

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--kind", choices=["reward", "policy"], help="Default: policy when a policy is set.")
        parser.add_argument("--policy", help="Overrides the policy model (e.g. builtin:smollm2).")

    def handle(self, *args, **options):
        if options.get("policy"):
            options["config"] = {**options["config"], "policy": options["policy"]}
        return super().handle(*args, **options)
