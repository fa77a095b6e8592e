"""Reads shaped for the views, with what they need already joined."""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.db import connection

from .models import Judgment


def partial_instance(model, **loaded):
    """A model instance with only ``loaded`` fields set, the rest deferred and loaded on access, as with
    ``QuerySet.only()``: for rows read by hand-written SQL on the hot path (``Model.from_db`` takes the values in
    the model's field order)."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in loaded]
    return model.from_db(connection.alias, names, [loaded[name] for name in names])


@dataclass(frozen=True)
class TaskCandidate:
    id: int
    text: str
    mime_type: str
    media_name: str  # storage name, "" for text candidates

    @property
    def media_url(self) -> str | None:
        return default_storage.url(self.media_name) if self.media_name else None


@dataclass(frozen=True)
class TaskContent:
    comparison_id: int
    prompt_id: int
    prompt_text: str
    prompt_context: list
    candidates: list[TaskCandidate]  # in the comparison's stored order

    def in_order(self, ids) -> list[TaskCandidate]:
        """The candidates in the order of ``ids`` (left to right as shown)."""
        by_id = {c.id: c for c in self.candidates}
        return [by_id[i] for i in ids]


def candidates_order(candidate_ids, *, comparison_id: int, annotator_id: int) -> list[int]:
    """Left to right, the order in which an annotator is shown a comparison's candidates: a shuffle seeded by the
    comparison and the annotator, so the stored order (often "chosen first" in imported pairs) never reaches the
    screen, a reload shows the same order, and two annotators' orders are independent. The server decides it (the
    web app shows candidates in the order served) so that a position check (annotation.quality.position) can
    show the reverse of what the annotator saw."""
    order = list(candidate_ids)
    random.Random(zlib.crc32(f"{comparison_id}:{annotator_id}".encode())).shuffle(order)
    return order


# One query for the whole task: this runs once per label served (inside the
# claim statement on Postgres, annotation.queue). The candidates come from the
# comparison's ``candidate_ids`` list, in its order; the prompt condition keeps
# a wrong id from ever showing another prompt's candidate.
TASK_CONTENT_SQL_POSTGRES = """
SELECT p.id, p.text, p.context, cand.id AS candidate_id, cand.text AS candidate_text, cand.mime_type, cand.media
FROM annotation_comparison c
JOIN annotation_prompt p ON p.id = c.prompt_id
CROSS JOIN LATERAL jsonb_array_elements_text(c.candidate_ids) WITH ORDINALITY AS listed(candidate_id, position)
JOIN annotation_candidate cand ON cand.id = listed.candidate_id::bigint AND cand.prompt_id = c.prompt_id
WHERE c.id = %s
ORDER BY listed.position
"""

TASK_CONTENT_SQL_SQLITE = """
SELECT p.id, p.text, p.context, cand.id AS candidate_id, cand.text AS candidate_text, cand.mime_type, cand.media
FROM annotation_comparison c
JOIN annotation_prompt p ON p.id = c.prompt_id
JOIN json_each(c.candidate_ids) AS listed
JOIN annotation_candidate cand ON cand.id = listed.value AND cand.prompt_id = c.prompt_id
WHERE c.id = %s
ORDER BY listed.key
"""


def task_content(*, comparison_id: int) -> TaskContent:
    """A comparison's prompt and candidates, as an annotator is shown them."""
    with connection.cursor() as cursor:
        sql = TASK_CONTENT_SQL_POSTGRES if connection.vendor == "postgresql" else TASK_CONTENT_SQL_SQLITE
        cursor.execute(sql, [comparison_id])
        rows = cursor.fetchall()
    return task_content_from_rows(comparison_id, rows)


def task_content_from_rows(comparison_id: int, rows: list[tuple]) -> TaskContent:
    """Build a task from the rows of ``TASK_CONTENT_SQL_*``, one per candidate."""
    if not rows:
        raise LookupError(f"Comparison {comparison_id} has no candidates.")
    prompt_id, prompt_text, context = rows[0][:3]
    if isinstance(context, str):  # SQLite returns JSON columns as text in raw queries
        context = json.loads(context)
    return TaskContent(
        comparison_id=comparison_id,
        prompt_id=prompt_id,
        prompt_text=prompt_text,
        prompt_context=context,
        candidates=[TaskCandidate(id=r[3], text=r[4], mime_type=r[5], media_name=r[6] or "") for r in rows],
    )


def judgments_visible(*, project_id: int, user, see_all: bool):
    """Judgments of a project: everyone's for researchers, one's own for annotators."""
    qs = Judgment.objects.filter(project_id=project_id).select_related("annotator").prefetch_related("spans")
    return qs if see_all else qs.filter(annotator=user)
