"""Import prompts, candidates and comparisons from JSON Lines, CSV or Parquet files.

One core (:func:`_import`) serves the background job (:func:`import_job_run`) and
the synchronous path (:func:`import_file`, used by ``manage.py import_data`` and
the benchmarks). It runs in three phases:

1. **reading**: count the rows (for progress).
2. **validating**: read every row, check it on its own (types, required fields,
   ids) and, a batch at a time, against the database (unknown prompt, candidate of
   another prompt, an id that exists with different content). Every bad row is
   reported and nothing is written. Each batch's plan (its new rows, and the keys
   of stored rows they refer to) goes to a temporary file.
3. **writing**: only when no row failed, write the plans inside ONE transaction:
   all or nothing. On Postgres rows go in with ``COPY``, their primary keys drawn
   from the sequences first; elsewhere with one ``executemany``. No ``ANALYZE``:
   the beat refreshes planner statistics (``annotation.planner_statistics``).

A rejected file never opens a write transaction, and no more than one batch of
parsed rows is in memory at a time.

On Postgres, when the caller is not inside a transaction (the worker, the
command, the benchmark), phases 2 and 3 run as one pass instead: the write
transaction opens first; this thread parses each batch, checks it and builds its
``COPY`` text (keys drawn through a second connection while the first is busy),
and a worker thread only sends it (foreign-key checks made immediate) while this
one goes on with the next batch; at the first bad row writing stops, checking
goes on and everything is rolled back. Postgres and Python then work at the
same time: on 2 cores each was about half of the import's CPU (bench/README.md).

Line numbers in errors are 1-based: the line of the file for JSON Lines (blank
lines count as lines but are skipped), the data row for CSV and Parquet (the
header is not counted: the first data row is line 1).

Re-importing is idempotent on external ids (unique per project): a row equal to
the stored one counts as ``unchanged``. A row whose id exists with different
content is an error. Optional columns a row leaves out are not compared.
Rows without an ``id`` get one derived from a hash of their content, so the
same file imported twice finds its own rows.

Lookups are skipped in a table that held none of the project's rows when the
import started (a first import): only the import's own rows could be found there.

The modules, in the order a file goes through them:

- ``jobs``: the services (:func:`import_job_create`, :func:`import_job_run`,
  :func:`import_file`), their argument checks, the job's progress, and the core
  that runs the three phases.
- ``files``: reading JSON Lines, CSV and Parquet into rows, a batch at a time.
- ``zipped``: a zip of a manifest (any of those) and the media files its candidates
  name, checked as a whole; a multipart upload of both is packed into one.
- ``rows``: parsing and checking one row on its own (no database).
- ``columns``: the same for a plain batch of bundle rows, a column at a time (the
  common case, fast); any other batch goes to ``rows``, which names each error.
- ``plan``: checking a batch against the database and deciding what it writes.
- ``writing``: writing the plans (``COPY`` on Postgres).
- ``rejection``: :class:`ImportRejected` and the capped list of row errors.
"""

from .jobs import (
    IMPORT_FORMATS,
    IMPORT_KINDS,
    IMPORT_OPTIONS,
    Progress,
    import_file,
    import_job_create,
    import_job_create_with_media,
    import_job_run,
    labelled_import_job_create,
)
from .rejection import ImportRejected

__all__ = [
    "IMPORT_FORMATS",
    "IMPORT_KINDS",
    "IMPORT_OPTIONS",
    "ImportRejected",
    "Progress",
    "import_file",
    "import_job_create",
    "import_job_create_with_media",
    "import_job_run",
    "labelled_import_job_create",
]
