"""The Celery app of the dead-worker tests: the project's, with an import and an export that stop half-way (after
the first batch of rows is written inside the import's transaction, after the first rows of the export) and wait
there to be killed. The marker file named by ``SLOW_JOB_MARKER`` tells the test the job got there."""

import os
import time
from pathlib import Path

from celery.signals import worker_process_init

from config.celery import app

__all__ = ["app"]

MARKER = Path(os.environ["SLOW_JOB_MARKER"])


@worker_process_init.connect
def _stop_half_way(**_):
    from annotation.exporters import core
    from annotation.importers import writing

    plan_write, export_run = writing._plan_write, core.Export.run

    def first_batch_then_wait(ctx, plan):
        plan_write(ctx, plan)
        MARKER.write_text("import")
        time.sleep(600)

    def first_rows_then_wait(self):
        for done in export_run(self):
            yield done
            MARKER.write_text("export")
            time.sleep(600)

    writing._plan_write = first_batch_then_wait
    core.Export.run = first_rows_then_wait
