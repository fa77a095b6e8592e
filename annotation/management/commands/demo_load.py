"""Load the demo: one user per role and a project of real QA answers to compare.

Idempotent: users are created or reset to the demo password, the project is
created once (found again by name), and its data goes through the importer, which
skips what is already there.
"""

import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.importers import import_file
from annotation.models import Membership, Modality, Project, Prompt, Role

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_PASSWORD = "tandem-demo"  # noqa: S105 - the demo's published password, printed on every run
DEMO_USERS = (("annotator", Role.ANNOTATOR), ("researcher", Role.RESEARCHER), ("admin", Role.ADMIN))
PROJECT_NAME = "Demo: long-form QA (Fine-Grained RLHF)"
DIGITS_PROJECT_NAME = "Demo: handwritten digits"
"""The image demo's project, loaded by training's ``manage.py digits_demo`` (annotation never imports training)."""
# The error types of Fine-Grained RLHF's QA feedback (Wu et al. 2023), as span categories.
SCHEMA = {
    "arity": 2,
    "allow_tie": True,
    "strength": {"min": 0, "max": 3},
    "criteria": [
        {"key": "factuality", "label": "Factuality", "min": 1, "max": 5},
        {"key": "completeness", "label": "Completeness", "min": 1, "max": 5},
    ],
    "span_categories": [
        {"key": "irrelevant", "label": "Irrelevant", "color": "#1f77b4"},
        {"key": "wrong-grounding", "label": "Wrong grounding", "color": "#d62728"},
        {"key": "unverifiable", "label": "Unverifiable", "color": "#ff7f0e"},
        {"key": "redundant", "label": "Redundant", "color": "#9467bd"},
        {"key": "incoherent", "label": "Incoherent", "color": "#8c564b"},
    ],
    "rationale": "optional",
}
# Models that ship inside PyPI packages (no download), sized so a round finishes in minutes on a laptop CPU: the
# reward model on MiniLM, the policy loop on SmolLM2-135M-Instruct. A round started from the dashboard runs the
# whole loop; "reward model only" trains just the reward model.
TRAINING_SETTINGS = {
    "backbone": "builtin:minilm",
    "epochs": 1,
    "max_length": 256,
    "batch_size": 16,
    "eval_fraction": 0.2,
    "policy": "builtin:smollm2",
    "prompts_per_round": 8,
    "candidates_per_prompt": 4,
    "max_new_tokens": 64,
    "eval_prompts": 8,
    "push_active_pairs": 8,
    "policy_max_length": 1024,
    "policy_batch_size": 4,
}


DEMO_SOURCE = "FineGrainedRLHF qa_feedback dev"
DEMO_LICENSE = "Apache-2.0"  # annotation/demo/LICENSE: the data's, named in each prompt's metadata (dataset cards)


def _demo_prompts_licensed(project: Project) -> None:
    """Prompts of a demo loaded before its metadata named the licence get it, so the import finds them unchanged
    (a prompt stored with other metadata is an import error) and exports' cards name the licence."""
    unlicensed = Prompt.objects.filter(project=project, metadata__source=DEMO_SOURCE).exclude(
        metadata__has_key="license"
    )
    for prompt in unlicensed:
        prompt.metadata = {"source": DEMO_SOURCE, "license": DEMO_LICENSE, **prompt.metadata}
        prompt.save(update_fields=["metadata"])


@transaction.atomic
def demo_users() -> dict:
    """The demo users by name, created or reset to the demo password (the image demo, training's
    ``digits_demo``, shares them)."""
    User = get_user_model()
    users = {}
    for username, _role in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@demo.invalid"})
        user.set_password(DEMO_PASSWORD)  # reset on every run, so the printed password always works
        user.is_staff = user.is_superuser = username == "admin"
        user.save()
        users[username] = user
    return users


class Command(BaseCommand):
    help = "Create the demo users (annotator, researcher, admin) and the demo project; safe to run again."

    def handle(self, **options):
        users = demo_users()
        project = self._project(owner=users["admin"])
        for username, role in DEMO_USERS:
            Membership.objects.update_or_create(project=project, user=users[username], defaults={"role": role})
        _demo_prompts_licensed(project)
        counts = import_file(project=project, kind="bundle", path=DEMO_DIR / "fgrlhf_qa_bundle.jsonl")

        self.stdout.write(f"Demo project #{project.pk} {project.name!r}:")
        for table, count in counts.items():
            self.stdout.write(f"  {table}: {count['created']} created, {count['unchanged']} already there")
        self.stdout.write("Demo users:")
        for username, role in DEMO_USERS:
            extra = ", Django superuser (can use /admin/)" if username == "admin" else ""
            self.stdout.write(f"  user {username!r:<13} password {DEMO_PASSWORD!r}  (project role: {role}{extra})")
        port = os.environ.get("PORT", "8000")  # bin/demo serves on $PORT
        self.stdout.write(
            f"Open http://127.0.0.1:{port}/ (API docs at /api/docs/, admin at /admin/) once the server runs "
            "(`make demo`, or `python manage.py runserver`)."
        )

    def _project(self, *, owner) -> Project:
        project = Project.objects.filter(name=PROJECT_NAME).order_by("pk").first()
        if project is None:
            project = Project.objects.create(
                name=PROJECT_NAME,
                modality=Modality.TEXT,
                schema=SCHEMA,
                overlap=2,  # two judgments per pair, so agreement shows up in the stats
                guidelines=(DEMO_DIR / "guidelines.md").read_text(),
                created_by=owner,
                training_settings=TRAINING_SETTINGS,
            )
        elif not project.training_settings:
            project.training_settings = TRAINING_SETTINGS  # a demo loaded before the settings existed
            project.save(update_fields=["training_settings"])
        return project
