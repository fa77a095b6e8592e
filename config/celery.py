"""The Celery app. Queues: ``default`` (CPU: import, export, stats, lease expiry)
and ``gpu`` (generation and training; one task per worker process)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tandem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.conf.task_routes = {"training.tasks.*": {"queue": "gpu"}}
app.autodiscover_tasks()
