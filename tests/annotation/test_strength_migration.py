"""Migration 0011: signed strength scales and strengths stored before it become magnitudes."""

import pytest
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor

from annotation.models import Judgment, Project

from ..factories import ProjectFactory, UserFactory, make_comparison

BEFORE = [("annotation", "0010_background_job_owner_heartbeat")]
AFTER = [("annotation", "0011_strength_is_a_magnitude")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)


@pytest.mark.django_db(transaction=True)
def test_signed_scales_and_strengths_become_magnitudes_and_the_database_keeps_them_so():
    migrate(BEFORE)
    signed = ProjectFactory(name="signed")
    Project.objects.filter(pk=signed.pk).update(schema={**signed.schema, "strength": {"min": -3, "max": 3}})
    plain = ProjectFactory(name="plain", schema={**signed.schema, "strength": None})
    comparison = make_comparison(signed)
    left = comparison.candidate_ids[0]
    made = [
        Judgment.objects.create(
            project=signed, comparison=comparison, annotator=UserFactory(), winner_id=left, idempotency_key="k"
        )
        for _ in range(3)
    ]
    for judgment, strength in zip(made, (-2, 3, None), strict=True):
        Judgment.objects.filter(pk=judgment.pk).update(strength=strength)  # the old API took −3..3

    migrate(AFTER)

    assert Project.objects.get(pk=signed.pk).schema["strength"] == {"min": 0, "max": 3}
    assert Project.objects.get(pk=plain.pk).schema["strength"] is None
    assert [Judgment.objects.get(pk=j.pk).strength for j in made] == [2, 3, None]
    with pytest.raises(IntegrityError):
        Judgment.objects.filter(pk=made[0].pk).update(strength=-1)
