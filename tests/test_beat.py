"""The beat's schedule: every entry names a task the workers know, so a renamed task fails here, not silently."""

from django.conf import settings

from config.celery import app


def test_every_beat_entry_names_a_registered_task():
    app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "annotation.tasks.planner_statistics_refresh_task" in scheduled
    assert scheduled <= set(app.tasks), sorted(scheduled - set(app.tasks))
