import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0014_gold_thresholds'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='position_check_share',
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name='project',
            name='position_check_after_min',
            field=models.PositiveSmallIntegerField(default=5),
        ),
        migrations.AddField(
            model_name='project',
            name='position_check_after_max',
            field=models.PositiveSmallIntegerField(default=20),
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.CheckConstraint(condition=models.Q(('position_check_share__gte', 0), ('position_check_share__lte', 1)), name='project_position_check_share_0_1'),
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.CheckConstraint(condition=models.Q(('position_check_after_max__gte', models.F('position_check_after_min')), ('position_check_after_min__gte', 1)), name='project_position_check_after_range'),
        ),
        migrations.AddField(
            model_name='annotatorquality',
            name='position_checks',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='annotatorquality',
            name='position_consistent',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.CreateModel(
            name='PositionCheck',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('waiting', 'Waiting'), ('served', 'Served'), ('answered', 'Answered'), ('skipped', 'Skipped'), ('dropped', 'Dropped')], default='waiting', max_length=8)),
                ('wait', models.PositiveSmallIntegerField(help_text='New tasks the annotator is still to be served before it is due.')),
                ('given_back', models.PositiveSmallIntegerField(default=0, help_text='Times released or run out unanswered.')),
                ('served_order', models.JSONField(blank=True, default=list, help_text='Candidate ids as served, left to right.')),
                ('served_at', models.DateTimeField(blank=True, null=True)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('answer', models.JSONField(blank=True, null=True)),
                ('idempotency_key', models.CharField(blank=True, max_length=255)),
                ('answered_at', models.DateTimeField(blank=True, null=True)),
                ('consistent', models.BooleanField(blank=True, help_text='The same winner (or top of the ranking, or tie) as the first time.', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.project')),
                ('comparison', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotation.comparison')),
                ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('judgment', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='position_check', to='annotation.judgment')),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('state', 'answered'), _negated=True), models.Q(('answer__isnull', False), ('consistent__isnull', False)), _connector='OR'), name='positioncheck_answered_has_answer')],
                'indexes': [models.Index(condition=models.Q(('state__in', ['waiting', 'served'])), fields=['annotator', 'project'], name='positioncheck_open')],
            },
        ),
    ]
