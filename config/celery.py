"""The Celery app. Queues: ``default`` (CPU: import, export, stats, lease expiry)
and ``gpu`` (generation and training; one task per worker process)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tandem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
# Training and generation need the GPU workers; everything else is CPU work.
app.conf.task_routes = {
    "training.tasks.rounds_schedule_task": {"queue": "default"},
    "training.tasks.*": {"queue": "gpu"},
    "annotation.tasks.*": {"queue": "default"},
}
app.autodiscover_tasks()
