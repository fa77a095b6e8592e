"""The keys prompt → project, candidate → prompt and comparison → prompt hold in the
database, whoever writes: a row whose parent is missing is refused and nothing of
its statement is written; a parent that still has children cannot be removed;
Django's cascades still delete. On Postgres statement-level triggers keep them
(migration 0008), on SQLite its foreign-key constraints.

These tests commit (``transaction=True``): SQLite checks its constraints at
commit, and the races need two connections that see each other's commits.
"""

import time

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from annotation.models import Candidate, Comparison, Project, Prompt

from ..concurrency import in_thread
from ..factories import CandidateFactory, ProjectFactory, PromptFactory, make_comparison

pytestmark = pytest.mark.django_db(transaction=True)

postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="Postgres' triggers and row locks")

MISSING = 987_654_321


def _child_insert_sql(child: str, parent_id: int, project_id: int) -> tuple[str, list]:
    """A raw insert of one child row, as an import or a script would write it."""
    if child == "annotation_prompt":
        return (
            "INSERT INTO annotation_prompt (project_id, external_id, text, context, metadata, split, created_at)"
            " VALUES (%s, %s, 't', '[]', '{}', 'train', CURRENT_TIMESTAMP)",
            [parent_id, f"raw-{parent_id}"],
        )
    if child == "annotation_candidate":
        return (
            "INSERT INTO annotation_candidate (project_id, prompt_id, external_id, text, media, mime_type, source,"
            " origin, metadata, created_at)"
            " VALUES (%s, %s, %s, 't', '', 'text/plain', 'imported', '{}', '{}', CURRENT_TIMESTAMP)",
            [project_id, parent_id, f"raw-{parent_id}"],
        )
    return (
        "INSERT INTO annotation_comparison (project_id, prompt_id, external_id, candidate_ids, status, priority,"
        " wanted, judged, leased, is_gold, origin, serve_order, created_at)"
        " VALUES (%s, %s, %s, '[]', 'open', 0, 1, 0, 0, false, '{}', 0, CURRENT_TIMESTAMP)",
        [project_id, parent_id, f"raw-{parent_id}"],
    )


RELATIONS = [
    pytest.param("annotation_prompt", "project_id", "annotation_project", id="prompt.project"),
    pytest.param("annotation_candidate", "prompt_id", "annotation_prompt", id="candidate.prompt"),
    pytest.param("annotation_comparison", "prompt_id", "annotation_prompt", id="comparison.prompt"),
]


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def _parent(parent: str) -> tuple[int, int]:
    """A fresh parent row of the given table: (its id, its project's id)."""
    if parent == "annotation_project":
        project = ProjectFactory()
        return project.pk, project.pk
    prompt = PromptFactory()
    return prompt.pk, prompt.project_id


def _names_the_key(error: IntegrityError, child: str, column: str, key: int) -> bool:
    """SQLite's constraint says only "FOREIGN KEY constraint failed"."""
    if connection.vendor != "postgresql":
        return True
    message = str(error)
    return child in message and column in message and str(key) in message


@pytest.mark.parametrize(("child", "column", "parent"), RELATIONS)
def test_a_row_whose_parent_is_missing_is_refused(child, column, parent):
    _, project_id = _parent(parent)
    before = _count(child)
    sql, params = _child_insert_sql(child, MISSING, project_id)

    with pytest.raises(IntegrityError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)

    assert _names_the_key(refused.value, child, column, MISSING)
    assert _count(child) == before


def test_an_orm_create_with_a_missing_prompt_is_refused():
    project = ProjectFactory()

    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        Candidate.objects.create(project=project, prompt_id=MISSING, external_id="c", text="t")

    assert _names_the_key(refused.value, "annotation_candidate", "prompt_id", MISSING)
    assert not Candidate.objects.exists()


@postgres_only
def test_one_bad_row_in_a_copy_refuses_the_whole_batch():
    """The import writes with COPY: the check covers every row of the statement."""
    prompts = PromptFactory.create_batch(3)
    project_id = prompts[0].project_id
    rows = [(project_id, p.pk, f"c{i}") for i, p in enumerate(prompts)] + [(project_id, MISSING, "bad")]

    with pytest.raises(IntegrityError) as refused, transaction.atomic(), connection.cursor() as cursor:
        # Django maps psycopg's errors only around execute(): map them around the COPY too.
        with (
            connection.wrap_database_errors,
            cursor.copy(
                "COPY annotation_candidate (project_id, prompt_id, external_id, text, media, mime_type, source,"
                " origin, metadata, created_at) FROM STDIN"
            ) as copy,
        ):
            for project, prompt, external_id in rows:
                copy.write_row((project, prompt, external_id, "t", "", "text/plain", "imported", "{}", "{}", "now"))

    assert _names_the_key(refused.value, "annotation_candidate", "prompt_id", MISSING)
    assert not Candidate.objects.exists()


@postgres_only
def test_the_check_runs_at_the_statement_not_at_commit():
    """Unlike Django's deferred constraints: a savepoint can catch it and go on."""
    prompt = PromptFactory()
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():
            Candidate.objects.create(project=prompt.project, prompt_id=MISSING, external_id="bad", text="t")
        CandidateFactory(prompt=prompt)

    assert list(Candidate.objects.values_list("prompt_id", flat=True)) == [prompt.pk]


@pytest.mark.parametrize(("child", "column", "parent"), RELATIONS)
def test_moving_a_row_to_a_missing_parent_is_refused(child, column, parent):
    parent_id, project_id = _parent(parent)
    sql, params = _child_insert_sql(child, parent_id, project_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)

    with pytest.raises(IntegrityError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {child} SET {column} = %s", [MISSING])

    assert _names_the_key(refused.value, child, column, MISSING)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {child}")
        assert cursor.fetchall() == [(parent_id,)]


@pytest.mark.parametrize(("child", "column", "parent"), RELATIONS)
def test_a_raw_delete_of_a_parent_that_still_has_children_is_refused(child, column, parent):
    parent_id, project_id = _parent(parent)
    sql, params = _child_insert_sql(child, parent_id, project_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    children = _count(child)

    with pytest.raises(IntegrityError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {parent} WHERE id = %s", [parent_id])

    assert _names_the_key(refused.value, child, column, parent_id)
    assert _count(child) == children
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {parent} WHERE id = %s", [parent_id])
        assert cursor.fetchone()[0] == 1


@postgres_only
@pytest.mark.parametrize(("child", "column", "parent"), RELATIONS)
def test_re_keying_or_truncating_a_referenced_parent_is_refused(child, column, parent):
    parent_id, project_id = _parent(parent)
    sql, params = _child_insert_sql(child, parent_id, project_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {parent} SET id = %s WHERE id = %s", [MISSING, parent_id])
    # Alone: with only the parent named, the child keeps rows that point at it.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {parent} CASCADE" if parent == "annotation_project" else f"TRUNCATE {parent}")

    assert _count(child) >= 1
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {parent} WHERE id = %s", [parent_id])
        assert cursor.fetchone()[0] == 1


@postgres_only
def test_truncating_parents_and_children_together_passes():
    make_comparison(ProjectFactory())
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE annotation_project, annotation_prompt, annotation_candidate, annotation_comparison CASCADE"
        )
    assert not Prompt.objects.exists()
    assert not Candidate.objects.exists()
    assert not Comparison.objects.exists()


def test_deleting_a_project_still_cascades_through_prompts_candidates_and_comparisons():
    """Not a test of the checks: that they leave Django's cascade (children first) working."""
    project = ProjectFactory()
    kept = make_comparison(ProjectFactory())
    for _ in range(3):
        make_comparison(project)

    project.delete()

    assert list(Prompt.objects.values_list("pk", flat=True)) == [kept.prompt_id]
    assert list(Comparison.objects.values_list("pk", flat=True)) == [kept.pk]
    assert set(Candidate.objects.values_list("pk", flat=True)) == set(kept.candidate_ids)


def test_deleting_a_prompt_still_cascades_to_its_candidates_and_comparisons():
    comparison = make_comparison(ProjectFactory())

    Prompt.objects.get(pk=comparison.prompt_id).delete()

    assert not Candidate.objects.exists()
    assert not Comparison.objects.exists()
    assert Project.objects.count() == 1


# --- Races (Postgres: SQLite has one writer at a time) ---------------------------------------------


def _wait_for_a_lock_wait(seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.005)
    return False


def _orphans() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM annotation_candidate c"
            " WHERE NOT EXISTS (SELECT FROM annotation_prompt p WHERE p.id = c.prompt_id)"
        )
        return cursor.fetchone()[0]


@postgres_only
def test_a_prompt_deleted_while_a_candidate_for_it_is_uncommitted_waits_and_is_refused(other):
    prompt = PromptFactory()
    sql, params = _child_insert_sql("annotation_candidate", prompt.pk, prompt.project_id)
    with other.cursor() as cursor:
        cursor.execute(sql, params)  # not committed: Django's collector below cannot see it

    join = in_thread(lambda: Prompt.objects.get(pk=prompt.pk).delete())
    assert _wait_for_a_lock_wait(), "the delete did not wait for the inserting transaction"
    other.commit()
    _, error = join()

    assert isinstance(error, IntegrityError)
    assert "is still referenced" in str(error)
    assert Prompt.objects.filter(pk=prompt.pk).exists()
    assert Candidate.objects.filter(prompt_id=prompt.pk).count() == 1
    assert _orphans() == 0


@postgres_only
def test_a_candidate_inserted_while_its_prompt_is_being_deleted_waits_and_is_refused(other):
    prompt = PromptFactory()
    with other.cursor() as cursor:
        cursor.execute("DELETE FROM annotation_prompt WHERE id = %s", [prompt.pk])  # not committed

    join = in_thread(lambda: CandidateFactory(prompt=prompt))
    assert _wait_for_a_lock_wait(), "the insert did not wait for the deleting transaction"
    other.commit()
    _, error = join()

    assert isinstance(error, IntegrityError)
    assert str(prompt.pk) in str(error)
    assert not Candidate.objects.exists()
    assert _orphans() == 0


@postgres_only
def test_removing_parents_under_repeatable_read_is_refused():
    """There the check could miss a child committed after the snapshot: it refuses instead."""
    prompt = PromptFactory()
    with pytest.raises(OperationalError, match="needs READ COMMITTED"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("DELETE FROM annotation_prompt WHERE id = %s", [prompt.pk])

    assert Prompt.objects.filter(pk=prompt.pk).exists()
