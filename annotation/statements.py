"""Running the labelling hot path's hand-written statements cheaply on Postgres (annotation.queue,
annotation.judgments, annotation.authentication)."""

import re

from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper


def compact_sql(sql: str) -> str:
    """``sql`` without its ``--`` comments and runs of white space. psycopg converts a statement's placeholders
    once and keeps the result only for statements of at most 4,096 characters; the claim, laid out and commented
    for people, is longer. (None of the hot path's statements holds ``--`` inside a string.)"""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def prepared_cursor():
    """A cursor whose statements Postgres plans once per connection (prepared statements), for the hot path's two
    statements: planning them cost several times what running them did. Django's own cursors bind parameters on
    the client, which cannot prepare; this one binds on the server, and the connection prepares such statements
    on first use (``prepare_threshold`` 0, config/settings.py). Off with ``DATABASE_PREPARED_STATEMENTS=0``."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    # Django's wrapper, as connection.cursor() gives: its error translation and query capture.
    return _LoggedAsWritten(raw, connection) if connection.queries_logged else connection.make_cursor(raw)


class _LoggedAsWritten(CursorDebugWrapper):
    """Query capture (DEBUG, tests) of a server-binding cursor: the statement as written, with its placeholders
    (Django reads the executed text back only from its own client-binding cursors)."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return super(CursorDebugWrapper, self).execute(sql, params)
