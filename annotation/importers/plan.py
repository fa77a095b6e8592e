"""Checking a parsed batch against the database: the stored rows it names (one
query per table), rows that exist with different content, references to unknown
prompts or candidates, gold answers in primary keys, and the resulting plan of
what the batch writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from ..models import Candidate, Comparison, Prompt
from .rejection import _Errors
from .rows import _Context, _Rows

LOOKUP_CHUNK = 5000  # ids per "IN (...)" list: well under SQLite's limit of 32,766 parameters


@dataclass
class _Plan:
    """What a batch writes: new rows as plain tuples (cheap to keep in the plans
    file), and the primary keys of stored rows they refer to."""

    # (external_id, text, context, metadata, split)
    new_prompts: list[tuple] = field(default_factory=list)
    # (prompt external id, external_id, text, mime_type, origin, metadata, media, media_width, media_height,
    #  media_file: (name in the upload, MediaInfo) or None): the file is stored just before its rows are written
    new_candidates: list[tuple] = field(default_factory=list)
    # (prompt external id, external_id, [candidate external ids], priority, wanted, gold in external ids)
    new_comparisons: list[tuple] = field(default_factory=list)
    prompt_pks: dict[str, int] = field(default_factory=dict)
    candidate_pks: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=lambda: {"prompts": 0, "candidates": 0, "comparisons": 0})


def _batch_plan(ctx: _Context, rows: _Rows, errors: _Errors) -> _Plan:
    """Check a parsed batch against the stored rows (one query per table) and decide
    what to write; row errors go to ``errors``."""
    plan = _Plan()
    prompts_stored = _stored(
        Prompt,
        ctx,
        {p.external_id for p in rows.prompts}
        | {c.prompt_external_id for c in rows.candidates}
        | {m.prompt_external_id for m in rows.comparisons},
        ("pk", "text", "context", "split", "metadata"),
    )
    plan.prompt_pks = {ext: stored[0] for ext, stored in prompts_stored.items()}
    for p in rows.prompts:
        stored = prompts_stored.get(p.external_id)
        if stored is None:
            plan.new_prompts.append((p.external_id, p.text, p.context, p.metadata, p.split))
            continue
        different = _differences(p, ("text", "context", "split", "metadata"), stored[1:], always=("text",))
        if different:
            errors.add(p.line, "id", f"The prompt {p.external_id!r} already exists with a different {different}.")
        else:
            plan.unchanged["prompts"] += 1
    batch_prompts = {p.external_id for p in rows.prompts}

    candidates_stored = _stored(
        Candidate,
        ctx,
        {c.external_id for c in rows.candidates},
        ("pk", "prompt_id", "text", "mime_type", "metadata", "origin", "media"),
    )
    for c in rows.candidates:
        prompt_pk = plan.prompt_pks.get(c.prompt_external_id)
        if prompt_pk is None and c.prompt_external_id not in batch_prompts:
            errors.add(c.line, "prompt_id", f"Unknown prompt {c.prompt_external_id!r}: import the prompt first.")
            continue
        stored = candidates_stored.get(c.external_id)
        if stored is None:
            info = c.media_file[1] if c.media_file is not None else None
            plan.new_candidates.append(
                (
                    c.prompt_external_id,
                    c.external_id,
                    c.text,
                    c.mime_type,
                    c.origin,
                    c.metadata,
                    c.media,
                    info and info.width,
                    info and info.height,
                    c.media_file,
                )
            )
            continue
        if stored[1] != prompt_pk:
            errors.add(c.line, f"{c.path}id", f"The candidate {c.external_id!r} already exists for another prompt.")
            continue
        # The media is compared by its storage name, which is the content's hash: the same file or not.
        different = _differences(
            c, ("text", "mime_type", "metadata", "origin", "media"), stored[2:], always=("text", "media")
        )
        if different:
            errors.add(
                c.line, f"{c.path}id", f"The candidate {c.external_id!r} already exists with a different {different}."
            )
        else:
            plan.unchanged["candidates"] += 1
    plan.candidate_pks = {ext: stored[0] for ext, stored in candidates_stored.items()}

    if rows.comparisons:
        _comparisons_plan(ctx, rows, plan, errors, batch_prompts)
    return plan


def _comparisons_plan(ctx: _Context, rows: _Rows, plan: _Plan, errors: _Errors, batch_prompts: set[str]) -> None:
    # Who owns each candidate: a candidate of this batch names its prompt's external
    # id; a stored one, its prompt's primary key.
    owners: dict[str, str | int] = {c.external_id: c.prompt_external_id for c in rows.candidates}
    referenced = {ext for m in rows.comparisons for ext in m.candidate_external_ids} - owners.keys()
    for ext, (pk, prompt_id) in _stored(Candidate, ctx, referenced, ("pk", "prompt_id")).items():
        plan.candidate_pks[ext] = pk
        owners[ext] = prompt_id
    comparisons_stored = _stored(
        Comparison,
        ctx,
        {m.external_id for m in rows.comparisons},
        ("pk", "prompt_id", "candidate_ids", "priority", "wanted", "is_gold", "gold_answer"),
    )
    for m in rows.comparisons:
        prompt_pk = plan.prompt_pks.get(m.prompt_external_id)
        if prompt_pk is None and m.prompt_external_id not in batch_prompts:
            errors.add(m.line, "prompt_id", f"Unknown prompt {m.prompt_external_id!r}: import the prompt first.")
            continue
        unknown = [ext for ext in m.candidate_external_ids if ext not in owners]
        foreign = [
            ext for ext in m.candidate_external_ids if owners.get(ext) not in (None, m.prompt_external_id, prompt_pk)
        ]
        if unknown:
            errors.add(m.line, f"{m.path}candidate_ids", f"Unknown candidate(s): {', '.join(map(repr, unknown))}.")
        if foreign:
            errors.add(
                m.line,
                f"{m.path}candidate_ids",
                f"Candidate(s) of another prompt, not of {m.prompt_external_id!r}: {', '.join(map(repr, foreign))}.",
            )
        if unknown or foreign:
            continue
        stored = comparisons_stored.get(m.external_id)
        if stored is None:
            plan.new_comparisons.append(
                (m.prompt_external_id, m.external_id, m.candidate_external_ids, m.priority, m.wanted, m.gold)
            )
            continue
        pks = [plan.candidate_pks.get(ext) for ext in m.candidate_external_ids]
        is_gold, gold_answer = _gold_answer(m.gold, plan.candidate_pks)
        different = [
            name
            for name, same in (
                ("prompt", stored[1] == prompt_pk),
                ("candidates", stored[2] == pks),
                ("priority", "priority" not in m.given or stored[3] == m.priority),
                ("wanted", "wanted" not in m.given or stored[4] == m.wanted),
                ("gold answer", (stored[5], stored[6]) == (is_gold, gold_answer)),
            )
            if not same
        ]
        if different:
            errors.add(
                m.line,
                f"{m.path}id" if m.path or ctx.kind != "bundle" else "comparisons",
                f"The comparison {m.external_id!r} already exists with different {', '.join(different)}.",
            )
        else:
            plan.unchanged["comparisons"] += 1


def _gold_answer(gold: dict | None, candidate_pks: dict[str, int]) -> tuple[bool, dict | None]:
    """A gold answer in candidate external ids → ``(is_gold, answer in candidate primary keys)``."""
    if gold is None:
        return False, None
    if "winner" in gold:
        return True, {"winner": candidate_pks.get(str(gold["winner"]))}
    if "ranking" in gold:
        return True, {"ranking": [candidate_pks.get(str(ext)) for ext in gold["ranking"]]}
    return True, {"tie": True}


def _differences(row, names: tuple[str, ...], stored: tuple, *, always: tuple[str, ...]) -> str:
    different = [
        name
        for name, value in zip(names, stored, strict=True)
        if (name in always or name in row.given) and getattr(row, name) != value
    ]
    return ", ".join(different)


def _stored(model, ctx: _Context, external_ids: set[str], names: tuple[str, ...]) -> dict[str, tuple]:
    """Stored rows of the project by external id: ``{external_id: (values of names...)}``.

    Raw SQL: on Postgres the ids travel as one array literal, probed one index
    lookup per id; the ORM's list of thousands of parameters, or psycopg's
    adaptation of a list, costs more to build on the client than the query costs
    to run.
    """
    if not external_ids or model._meta.model_name in ctx.empty_at_start:
        # A table with none of the project's rows at the start has none of these
        # but the import's own, which are new (ids repeated in the file are
        # errors already). This skips the lookups of a first import, which,
        # inside the overlapped import's transaction, cost 15x more than before
        # its own rows were in the index (measured).
        return {}
    meta = model._meta
    fields = [meta.get_field("external_id"), *(meta.pk if n == "pk" else meta.get_field(n) for n in names)]
    converters = [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    select = f"SELECT {columns} FROM {meta.db_table} WHERE project_id = %s AND external_id "
    ids = list(external_ids)
    postgres = connection.vendor == "postgresql"
    chunk_size = len(ids) if postgres else LOOKUP_CHUNK
    found = {}
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start : start + chunk_size]
            if postgres:
                cursor.execute(
                    _PROBES_SQL.format(columns=columns, table=meta.db_table), [_pg_text_array(chunk), ctx.project_id]
                )
            else:
                cursor.execute(select + f"IN ({', '.join(['%s'] * len(chunk))})", [ctx.project_id, *chunk])
            for row in cursor.fetchall():
                if converters:
                    row = list(row)
                    for i, f in converters:
                        row[i] = f.from_db_value(row[i], None, connection)
                found[row[0]] = tuple(row[1:])
    return found


# One index probe per id, always. Given ``external_id = ANY(array)``, the planner priced a batch's thousands of
# probes above a scan of a table of tens of thousands of rows and scanned it, each batch, at five times the cost
# (bench/README.md). OFFSET 0 keeps the subquery apart, so it can only be probed once per id.
_PROBES_SQL = (
    "SELECT s.* FROM unnest(%s::text[]) AS e(external_id) CROSS JOIN LATERAL ("
    "SELECT {columns} FROM {table} WHERE project_id = %s AND external_id = e.external_id OFFSET 0) AS s"
)


def _pg_text_array(values: list[str]) -> str:
    """A Postgres array literal of strings: ``{"a","b \\"c\\""}``."""
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"
