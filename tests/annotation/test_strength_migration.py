"""Migration 0011: signed strength scales and strengths stored before it become magnitudes."""

import pytest
from django.conf import settings
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("annotation", "0010_background_job_owner_heartbeat")]
AFTER = [("annotation", "0011_strength_is_a_magnitude")]


def migrate(target=None):
    """Migrate to ``target`` (default: every app's latest); return the apps (historical models) of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    target = target or executor.loader.graph.leaf_nodes()
    executor.migrate(target)
    executor.loader.build_graph()
    return executor.loader.project_state(target).apps


@pytest.mark.django_db(transaction=True)
def test_signed_scales_and_strengths_become_magnitudes_and_the_database_keeps_them_so():
    old = migrate(BEFORE)  # the models as they were then: later migrations may add columns the database lacks
    Project, Prompt, Candidate = (old.get_model("annotation", m) for m in ("Project", "Prompt", "Candidate"))
    Comparison, Judgment = old.get_model("annotation", "Comparison"), old.get_model("annotation", "Judgment")
    User = old.get_model(*settings.AUTH_USER_MODEL.split("."))
    schema = {"arity": 2, "allow_tie": True, "strength": {"min": -3, "max": 3}}
    signed = Project.objects.create(name="signed", schema=schema)
    plain = Project.objects.create(name="plain", schema={**schema, "strength": None})
    prompt = Prompt.objects.create(project=signed, external_id="p", text="Which is better?")
    left, right = (Candidate.objects.create(project=signed, prompt=prompt, external_id=t, text=t) for t in "ab")
    comparison = Comparison.objects.create(
        project=signed, prompt=prompt, external_id="c", candidate_ids=[left.pk, right.pk], wanted=3
    )
    made = [
        Judgment.objects.create(
            project=signed,
            comparison=comparison,
            annotator=User.objects.create(username=f"u{i}"),
            winner_id=left.pk,
            strength=strength,  # the old API took −3..3
            idempotency_key="k",
        )
        for i, strength in enumerate((-2, 3, None))
    ]

    new = migrate(AFTER)

    Project, Judgment = new.get_model("annotation", "Project"), new.get_model("annotation", "Judgment")
    assert Project.objects.get(pk=signed.pk).schema["strength"] == {"min": 0, "max": 3}
    assert Project.objects.get(pk=plain.pk).schema["strength"] is None
    assert [Judgment.objects.get(pk=j.pk).strength for j in made] == [2, 3, None]
    with pytest.raises(IntegrityError):
        Judgment.objects.filter(pk=made[0].pk).update(strength=-1)
    migrate()  # leave the schema as the other tests expect it
