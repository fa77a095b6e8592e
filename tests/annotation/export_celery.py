"""The Celery app of the export worker test: the project's, with ranges so small that the test's few judgments
are exported by worker processes (constants the test process changes do not reach a worker it starts)."""

from celery.signals import worker_process_init

from config.celery import app

__all__ = ["app"]


@worker_process_init.connect
def _tiny_ranges(**_):
    from annotation.exporters import core

    core.RANGE_JUDGMENTS = 2
    core.PARALLEL_MIN_JUDGMENTS = 1
