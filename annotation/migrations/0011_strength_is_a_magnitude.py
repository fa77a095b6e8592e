"""Strength becomes what the server always read it as: how much better the winner is (≥ 0).

Signed scales (−3..3) become their magnitude (0..3) on projects, and stored strengths their absolute
value (training and the exports already used |strength|); then the database holds the rule.
"""

from django.db import migrations, models
from django.db.models import F


def strengths_to_magnitudes(apps, schema_editor):
    Project = apps.get_model("annotation", "Project")
    Judgment = apps.get_model("annotation", "Judgment")
    for project in Project.objects.only("pk", "schema").iterator():  # few rows: projects, not judgments
        scale = project.schema.get("strength") if isinstance(project.schema, dict) else None
        if isinstance(scale, dict) and isinstance(scale.get("min"), int) and scale["min"] < 0:
            top = max(abs(scale["min"]), scale.get("max") if isinstance(scale.get("max"), int) else 0)
            project.schema = {**project.schema, "strength": {"min": 0, "max": top}}
            project.save(update_fields=["schema"])
    Judgment.objects.filter(strength__lt=0).update(strength=-F("strength"))


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0010_background_job_owner_heartbeat"),
    ]

    operations = [
        migrations.RunPython(strengths_to_magnitudes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="judgment",
            constraint=models.CheckConstraint(
                condition=models.Q(("strength__isnull", True), ("strength__gte", 0), _connector="OR"),
                name="judgment_strength_is_a_magnitude",
            ),
        ),
    ]
