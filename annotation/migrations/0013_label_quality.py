import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0012_queue_serve_order'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ComparisonConsensus',
            fields=[
                ('comparison', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='consensus', serialize=False, to='annotation.comparison')),
                ('confidence', models.FloatField()),
                ('judgments', models.PositiveIntegerField()),
                ('project', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.project')),
                ('winner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.candidate')),
            ],
        ),
        migrations.CreateModel(
            name='ProjectQuality',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('judgment_max_id', models.BigIntegerField(default=0, help_text='The newest judgment the figures include.')),
                ('judgment_count', models.PositiveIntegerField(default=0)),
                ('statistics', models.JSONField(blank=True, default=dict)),
                ('computed_at', models.DateTimeField(blank=True, null=True)),
                ('project', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='quality', to='annotation.project')),
            ],
        ),
        migrations.CreateModel(
            name='AnnotatorExclusion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reason', models.TextField(blank=True)),
                ('excluded_at', models.DateTimeField(auto_now_add=True)),
                ('restored_at', models.DateTimeField(blank=True, null=True)),
                ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('excluded_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.project')),
                ('restored_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(condition=models.Q(('restored_at__isnull', True)), fields=('project', 'annotator'), name='annotatorexclusion_one_standing')],
            },
        ),
        migrations.CreateModel(
            name='AnnotatorQuality',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('judgments', models.PositiveIntegerField(default=0)),
                ('median_time_ms', models.PositiveIntegerField(blank=True, null=True)),
                ('gold_judged', models.PositiveIntegerField(default=0)),
                ('gold_correct', models.FloatField(default=0.0, help_text='Ties against a gold winner count half.')),
                ('reliability', models.FloatField(blank=True, null=True)),
                ('weight', models.FloatField(blank=True, null=True)),
                ('agreement_with_consensus', models.FloatField(blank=True, null=True)),
                ('agreement_with_others', models.FloatField(blank=True, null=True)),
                ('left_share', models.FloatField(blank=True, help_text='Share of choices for the candidate shown left.', null=True)),
                ('longer_share', models.FloatField(blank=True, help_text='Share of choices for the longer text.', null=True)),
                ('flags', models.JSONField(blank=True, default=list)),
                ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'annotator'), name='annotatorquality_one_per_annotator')],
            },
        ),
    ]
