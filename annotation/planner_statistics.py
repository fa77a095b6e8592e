"""Planner statistics of the annotation tables, refreshed by the beat once a table changed by a meaningful share.

Autovacuum does this in a standard Postgres deployment; Tandem does it too because Postgres may run without
autovacuum (this project's CI and development clusters do), and imports, training's pushes and the queue change
these tables in bursts. Never in the request that made the change: an ``ANALYZE`` samples up to 30,000 rows a table,
which was most of a 1,000-task API import's time, and the queue's claim plan does not need fresh statistics
(docs/DECISIONS.md).
"""

from __future__ import annotations

from django.db import connection

from .models import Assignment, Candidate, Comparison, Judgment, Prompt

# Autovacuum's own defaults (autovacuum_analyze_threshold, autovacuum_analyze_scale_factor): a table is analyzed once
# this many rows plus this share of its rows changed since its last ANALYZE; an empty table's first 50 rows cross it.
ANALYZE_THRESHOLD_ROWS = 50
ANALYZE_SCALE_FACTOR = 0.1

MODELS = (Prompt, Candidate, Comparison, Assignment, Judgment)


def planner_statistics_refresh() -> list[str]:
    """``ANALYZE`` every annotation table whose rows changed by at least the threshold since its last ``ANALYZE``, by
    Postgres's own count (``n_mod_since_analyze``: rows inserted, updated or deleted by anyone; an ``ANALYZE`` by
    autovacuum resets it too, so the two do not double up). Returns the tables analyzed; nothing off Postgres."""
    if connection.vendor != "postgresql":
        return []
    tables = [model._meta.db_table for model in MODELS]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, greatest(c.reltuples, 0), coalesce(s.n_mod_since_analyze, 0) FROM pg_class c"
            " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = ANY(%s::regclass[])",
            [tables],
        )
        due = sorted(
            table
            for table, rows, changed in cursor.fetchall()
            if changed >= ANALYZE_THRESHOLD_ROWS + ANALYZE_SCALE_FACTOR * rows
        )
        if due:  # named: a bare ANALYZE would take the whole database
            cursor.execute("ANALYZE " + ", ".join(due))
    return due
