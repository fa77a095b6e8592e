"""On Postgres, the keys prompt → project, candidate → prompt and comparison → prompt
are checked by statement-level triggers instead of foreign-key constraints.

A foreign-key constraint checks each inserted row on its own (one SPI query and
one row lock per row, queued until commit); at an import's size that was 41 % of
Postgres' CPU. These triggers check a whole statement's rows (a ``COPY`` batch)
in one query, with the same guarantees (docs/DECISIONS.md, "Comparisons and the
import"). Each raises SQLSTATE 23503 (foreign_key_violation), which Django turns
into ``IntegrityError``, with a message naming the table, the column and a key.

SQLite keeps its foreign-key constraints (the database side of this migration
does nothing there): it has row triggers only, and Django's test flush deletes
its tables one by one in no set order, which immediate checks would refuse while
the deferred constraint accepts it. The model state says ``db_constraint=False``
for both, so a later migration that rebuilds one of these tables on SQLite (an
``AlterField``, for one) drops its constraint: re-add it there
(``tests/annotation/test_parent_checks.py`` fails if it is missing).

The SQL below is this migration's own copy: later changes go in a new migration.
"""

from django.db import migrations, models

# (child table, key column, parent table); every parent's key is ``id``.
RELATIONS = (
    ("annotation_prompt", "project_id", "annotation_project"),
    ("annotation_candidate", "prompt_id", "annotation_prompt"),
    ("annotation_comparison", "prompt_id", "annotation_prompt"),
)


def _names(child: str, column: str) -> str:
    return f"{child}_{column}_parent_check"


# Every check looks keys up one by one in an index, as the built-in check does.
# PL/pgSQL keeps a query's first plan for the session, and a first import
# plans against an empty table: the planner then scans the whole parent table
# into a hash, and keeps doing so as it grows (measured: at 300k comparisons the
# checks then cost as much as the constraints they replace).
INDEX_PROBES = "SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off"


def _create_sql(child: str, column: str, parent: str) -> str:
    name = _names(child, column)
    fk_error = (
        f"RAISE foreign_key_violation USING "
        f'MESSAGE = format(\'insert or update on table "{child}" violates its key {column}: '
        f'Key ({column})=(%s) is not present in table "{parent}"\', missing), '
        f"TABLE = '{child}', COLUMN = '{column}', CONSTRAINT = '{name}';"
    )
    referenced_error = (
        f"RAISE foreign_key_violation USING "
        f'MESSAGE = format(\'update or delete on table "{parent}" violates the key {column} of table "{child}": '
        f'Key (id)=(%s) is still referenced from table "{child}"\', referenced), '
        f"TABLE = '{child}', COLUMN = '{column}', CONSTRAINT = '{name}';"
    )
    # The parent-side checks read the child table with a new snapshot per query,
    # which only READ COMMITTED gives: under REPEATABLE READ or SERIALIZABLE a
    # child committed after the transaction's snapshot would be missed (the
    # built-in constraint reads it through a second, fresh snapshot, which
    # PL/pgSQL cannot). Refused rather than risk an orphan.
    read_committed_only = (
        "IF current_setting('transaction_isolation') <> 'read committed' THEN "
        f'RAISE object_not_in_prerequisite_state USING MESSAGE = \'removing or re-keying rows of table "{parent}" '
        f'needs READ COMMITTED: the check of "{child}".{column} cannot see rows committed after the snapshot\'; '
        "END IF;"
    )
    return f"""
CREATE FUNCTION {name}_insert() RETURNS trigger LANGUAGE plpgsql {INDEX_PROBES} AS $$
DECLARE
    wanted bigint;
    held bigint;
    missing bigint;
BEGIN
    -- Lock each parent FOR KEY SHARE, as the built-in check does, so that a
    -- concurrent delete of one waits for this transaction and then sees its rows.
    -- A parent deleted and committed meanwhile is skipped by the lock (READ
    -- COMMITTED): what was locked, not what exists, is counted. The aggregate
    -- reads every key, so every parent is locked.
    SELECT count(*), count(locked.id) INTO wanted, held
    FROM (SELECT DISTINCT {column} AS id FROM new_rows WHERE {column} IS NOT NULL) AS k
    LEFT JOIN LATERAL (SELECT p.id FROM {parent} p WHERE p.id = k.id FOR KEY SHARE OF p) AS locked ON true;
    IF held < wanted THEN
        SELECT n.{column} INTO missing FROM new_rows n
        WHERE n.{column} IS NOT NULL AND NOT EXISTS (SELECT FROM {parent} p WHERE p.id = n.{column})
        LIMIT 1;
        {fk_error}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER {name}_insert AFTER INSERT ON {child}
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {name}_insert();

-- Re-keying a child is rare (Django never does it): one row at a time. The WHEN
-- keeps every other update (the queue's counters) from calling the function.
CREATE FUNCTION {name}_update() RETURNS trigger LANGUAGE plpgsql {INDEX_PROBES} AS $$
DECLARE
    missing bigint := NEW.{column};
BEGIN
    PERFORM FROM {parent} p WHERE p.id = NEW.{column} FOR KEY SHARE OF p;
    IF NOT FOUND THEN
        {fk_error}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER {name}_update AFTER UPDATE OF {column} ON {child}
    FOR EACH ROW WHEN (NEW.{column} IS NOT NULL AND NEW.{column} IS DISTINCT FROM OLD.{column})
    EXECUTE FUNCTION {name}_update();

-- Parents leave in bulk (a project's deletion): one query per statement.
-- Django deletes children first, so its cascades pass.
CREATE FUNCTION {name}_parent_delete() RETURNS trigger LANGUAGE plpgsql {INDEX_PROBES} AS $$
DECLARE
    referenced bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM old_rows) THEN
        RETURN NULL;
    END IF;
    {read_committed_only}
    SELECT o.id INTO referenced FROM old_rows o
    WHERE EXISTS (SELECT FROM {child} c WHERE c.{column} = o.id)
    LIMIT 1;
    IF FOUND THEN
        {referenced_error}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER {name}_parent_delete AFTER DELETE ON {parent}
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {name}_parent_delete();

CREATE FUNCTION {name}_parent_update() RETURNS trigger LANGUAGE plpgsql {INDEX_PROBES} AS $$
DECLARE
    referenced bigint := OLD.id;
BEGIN
    {read_committed_only}
    IF EXISTS (SELECT FROM {child} c WHERE c.{column} = OLD.id) THEN
        {referenced_error}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER {name}_parent_update AFTER UPDATE OF id ON {parent}
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION {name}_parent_update();

-- TRUNCATE fires no delete triggers. AFTER TRUNCATE runs once every table the
-- statement names is empty, so truncating parent and child together passes.
CREATE FUNCTION {name}_parent_truncate() RETURNS trigger LANGUAGE plpgsql {INDEX_PROBES} AS $$
BEGIN
    {read_committed_only}
    IF EXISTS (SELECT FROM {child}) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'cannot truncate table "{parent}": table "{child}" still references it ({column})',
            TABLE = '{child}', COLUMN = '{column}', CONSTRAINT = '{name}';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER {name}_parent_truncate AFTER TRUNCATE ON {parent}
    FOR EACH STATEMENT EXECUTE FUNCTION {name}_parent_truncate();
"""


def _drop_sql(child: str, column: str, parent: str) -> str:
    name = _names(child, column)
    return f"""
DROP TRIGGER {name}_insert ON {child};
DROP TRIGGER {name}_update ON {child};
DROP TRIGGER {name}_parent_delete ON {parent};
DROP TRIGGER {name}_parent_update ON {parent};
DROP TRIGGER {name}_parent_truncate ON {parent};
DROP FUNCTION {name}_insert(), {name}_update(), {name}_parent_delete(), {name}_parent_update(),
    {name}_parent_truncate();
"""


def checks_by_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for child, column, parent in RELATIONS:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass"
                " AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s)]",
                [child, child, column],
            )
            (constraint,) = cursor.fetchone()
        schema_editor.execute(f"ALTER TABLE {child} DROP CONSTRAINT {constraint}")
        schema_editor.execute(_create_sql(child, column, parent), params=None)


def checks_by_constraint(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for child, column, parent in RELATIONS:
        schema_editor.execute(_drop_sql(child, column, parent), params=None)
        # Django's own form of the constraint (later migrations find it by its column).
        schema_editor.execute(
            f"ALTER TABLE {child} ADD CONSTRAINT {child}_{column}_fk_{parent}_id FOREIGN KEY ({column})"
            f" REFERENCES {parent} (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0007_lease_ahead_slot"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="prompt",
                    name="project",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="prompts",
                        to="annotation.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="candidate",
                    name="prompt",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="candidates",
                        to="annotation.prompt",
                    ),
                ),
                migrations.AlterField(
                    model_name="comparison",
                    name="prompt",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="comparisons",
                        to="annotation.prompt",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(checks_by_trigger, checks_by_constraint)],
        ),
    ]
