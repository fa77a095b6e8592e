from django.db import migrations, models


class Migration(migrations.Migration):
    """A second live lease per annotator and project (the task fetched ahead):
    the unique partial index gains a two-valued ``slot``. Existing leases are in
    slot 0, which the old index kept to one per annotator and project."""

    dependencies = [
        ("annotation", "0006_export_job"),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="slot",
            field=models.PositiveSmallIntegerField(default=0, db_default=0),
        ),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.CheckConstraint(
                condition=models.Q(slot__in=(0, 1)), name="assignment_slot_current_or_ahead"
            ),
        ),
        migrations.AddConstraint(
            model_name="assignment",
            constraint=models.UniqueConstraint(
                condition=models.Q(state="leased"),
                fields=("annotator", "project", "slot"),
                name="assignment_live_slot_per_project",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="assignment",
            name="assignment_one_live_per_project",
        ),
    ]
