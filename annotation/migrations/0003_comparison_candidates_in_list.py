"""Comparison.candidate_ids becomes the only link to a comparison's candidates.

The through table ComparisonCandidate is dropped (docs/DECISIONS.md,
"Comparisons"). Every writer kept ``candidate_ids`` equal to the links, but the
links were the referential truth: before dropping them, any comparison whose list
disagrees with its links (in position order) gets the links' list. Going back
rebuilds the links from the lists.
"""

from django.db import migrations, models

LINKS = "annotation_comparisoncandidate"


def lists_from_links(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                UPDATE annotation_comparison c SET candidate_ids = l.ids
                FROM (SELECT comparison_id, jsonb_agg(candidate_id ORDER BY position) AS ids
                      FROM {LINKS} GROUP BY comparison_id) l
                WHERE l.comparison_id = c.id AND c.candidate_ids IS DISTINCT FROM l.ids
                """
            )
            return
        # SQLite (small, local databases): compare in Python.
        cursor.execute(f"SELECT comparison_id, candidate_id FROM {LINKS} ORDER BY comparison_id, position")
        linked = {}
        for comparison_id, candidate_id in cursor.fetchall():
            linked.setdefault(comparison_id, []).append(candidate_id)
    Comparison = apps.get_model("annotation", "Comparison")
    for pk, ids in Comparison.objects.filter(pk__in=list(linked)).values_list("pk", "candidate_ids"):
        if ids != linked[pk]:
            Comparison.objects.filter(pk=pk).update(candidate_ids=linked[pk])


def links_from_lists(apps, schema_editor):
    Comparison = apps.get_model("annotation", "Comparison")
    ComparisonCandidate = apps.get_model("annotation", "ComparisonCandidate")
    links = []
    for pk, ids in Comparison.objects.values_list("pk", "candidate_ids").iterator(chunk_size=5000):
        links.extend(
            ComparisonCandidate(comparison_id=pk, candidate_id=candidate_id, position=position)
            for position, candidate_id in enumerate(ids)
        )
        if len(links) >= 10000:
            ComparisonCandidate.objects.bulk_create(links)
            links = []
    ComparisonCandidate.objects.bulk_create(links)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0002_drop_redundant_fk_indexes"),
    ]

    operations = [
        migrations.RunPython(lists_from_links, links_from_lists),
        migrations.RemoveField(
            model_name="comparison",
            name="candidates",
        ),
        migrations.DeleteModel(
            name="ComparisonCandidate",
        ),
    ]
