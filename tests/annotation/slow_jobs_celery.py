"""The Celery app of the dead-worker tests: the project's, with an import and an export that stop half-way and
wait there to be killed — the import after the first batch of rows is written inside its transaction (SQLite and
Postgres alike), the export after its first rows. The file named by ``SLOW_JOB_MARKER`` tells the test the job got
there."""

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
    from annotation.importers import jobs, writing

    plan_write, batch_send, export_run = writing._plan_write, jobs._batch_send, core.Export.run

    def first_batch_then_wait(*args, write=plan_write):
        write(*args)
        MARKER.write_text("import")
        time.sleep(600)

    def first_rows_then_wait(self):
        for done in export_run(self):
            yield done
            MARKER.write_text("export")
            time.sleep(600)

    writing._plan_write = first_batch_then_wait  # SQLite: validate, then write in one transaction
    # Postgres: batches are sent (COPY) by a writer thread while the next ones are checked, all in one transaction.
    jobs._batch_send = lambda inserts: first_batch_then_wait(inserts, write=batch_send)
    core.Export.run = first_rows_then_wait
