from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0003_round_steps'),
    ]

    operations = [
        migrations.AddField(
            model_name='round',
            name='attempt_floor',
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
