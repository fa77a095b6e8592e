"""Reads shaped for the views, with what they need already joined."""

from __future__ import annotations

from .models import Candidate, Comparison, Judgment


def task_content(*, comparison_id: int) -> tuple[Comparison, list[Candidate]]:
    """A comparison with its prompt and its candidates in stored order: two queries."""
    comparison = Comparison.objects.select_related("prompt").get(pk=comparison_id)
    by_id = {
        c.pk: c
        for c in Candidate.objects.filter(pk__in=comparison.candidate_ids).only("id", "text", "mime_type", "media")
    }
    return comparison, [by_id[pk] for pk in comparison.candidate_ids]


def judgments_visible(*, project_id: int, user, see_all: bool):
    """Judgments of a project: everyone's for researchers, one's own for annotators."""
    qs = Judgment.objects.filter(project_id=project_id).select_related("annotator").prefetch_related("spans")
    return qs if see_all else qs.filter(annotator=user)
