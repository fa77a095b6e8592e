from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0008_statement_level_parent_checks'),
    ]

    operations = [
        migrations.AddField(
            model_name='candidate',
            name='media_height',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='candidate',
            name='media_width',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
