import copy
import zlib

from django.db import migrations, models


def spread_open_comparisons(apps, schema_editor):
    """Give the open comparisons already queued the spread-out order new ones get (annotation.queue.serve_order,
    copied: a migration must not import code that may change); a round's pushes keep their order (serve_order 0)."""
    Comparison = apps.get_model("annotation", "Comparison")
    batch = []
    queued = Comparison.objects.filter(status="open").exclude(origin__has_key="round")
    for pk, external_id in queued.values_list("pk", "external_id").iterator(5000):
        batch.append(Comparison(pk=pk, serve_order=zlib.crc32(external_id.encode()) >> 1))
        if len(batch) == 5000:
            Comparison.objects.bulk_update(batch, ["serve_order"])
            batch = []
    Comparison.objects.bulk_update(batch, ["serve_order"])


def comparison_prompt_key_restore(apps, schema_editor):
    """On SQLite, adding serve_order rebuilt the comparison table from the model state, whose prompt key says
    ``db_constraint=False`` (Postgres checks it by trigger, 0008): rebuild it with the constraint SQLite keeps."""
    if schema_editor.connection.vendor != "sqlite":
        return
    Comparison = apps.get_model("annotation", "Comparison")
    stated = Comparison._meta.get_field("prompt")
    constrained = copy.copy(stated)
    constrained.db_constraint = True
    schema_editor.alter_field(Comparison, stated, constrained)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0011_strength_is_a_magnitude"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="comparison",
            name="comparison_open_queue",
        ),
        migrations.AddField(
            model_name="comparison",
            name="serve_order",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="project",
            name="serve_prompt_pairs_together",
            field=models.BooleanField(
                default=False,
                help_text="Serve the comparisons of one prompt one after another (else the queue spreads them out).",
            ),
        ),
        migrations.RunPython(comparison_prompt_key_restore, migrations.RunPython.noop),
        migrations.RunPython(spread_open_comparisons, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="comparison",
            index=models.Index(
                condition=models.Q(("status", "open")),
                fields=["project", "is_gold", "-priority", "serve_order", "id"],
                name="comparison_open_queue",
            ),
        ),
    ]
