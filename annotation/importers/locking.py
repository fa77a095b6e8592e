"""One import at a time per project.

Imports check the file against what the project holds, then write (in two passes outside one transaction on
SQLite, in one transaction on Postgres). Two imports of the same ids at once would both find them free and one
would fail on a unique constraint. Holding this lock from before the first check to after the commit makes the
later one wait, then find the rows there: it reports them unchanged, as any re-import does.
"""

import contextlib
import fcntl
from collections.abc import Iterator

from django.conf import settings
from django.db import connection

_PG_LOCK_SPACE = 0x7A4D  # the first key of Postgres's two-key advisory locks: Tandem's imports


@contextlib.contextmanager
def project_import_lock(project_id: int) -> Iterator[None]:
    key = [_PG_LOCK_SPACE, project_id % 2**31]  # the two-integer form takes int4s
    if connection.vendor == "postgresql":
        if connection.in_atomic_block:
            # Inside a caller's transaction: held until it ends, however it ends.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s::integer, %s::integer)", key)
            yield
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s::integer, %s::integer)", key)
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s::integer, %s::integer)", key)
        return
    # SQLite: every process using the database is on this machine, so a lock on a file beside it serves.
    folder = settings.VAR_DIR / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"import-project-{project_id}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield
