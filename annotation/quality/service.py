"""Compute and store a project's label-quality figures: agreement, reliability, consensus, flags.

``quality_recompute`` reads every judgment of the project once, calls the plain-Python statistics
(``agreement``, ``reliability``, ``flags``) and replaces the stored figures in one transaction. It runs in a Celery
task (``annotation.tasks.quality_refresh_task``) once ``QUALITY_MIN_NEW_JUDGMENTS`` judgments arrived since the
last computation, never per request: the EM pass costs seconds on a large project.

Answers are read in the comparison's stored candidate order (what the annotator saw was shuffled, and
``shown_order`` records it): a choice is the winner's candidate id, the top of a ranking, or ``"tie"``.
"""

from __future__ import annotations

import statistics as stats
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import Length
from django.utils import timezone

from ..models import Candidate, Judgment, Project, SpanMark
from ..quality_models import AnnotatorQuality, ComparisonConsensus, PositionCheck, PositionCheckState, ProjectQuality
from . import agreement
from .answers import TIE, answer_choice
from .flags import FlagRules, annotator_flags
from .gold import gold_pauses_apply
from .promotion import is_gold_check
from .reliability import Label, reliability_fit, reliability_weight

MIN_EVIDENCE = 10
"""Choices an annotator must have made on comparisons someone else also judged, or on gold, before their
reliability (and training weight) is estimated: without overlap or gold the model can only say 0.5 for everyone,
which as a weight would drop every label of a project with overlap 1."""

MIN_SHARED = 5
"""Comparisons two annotators must share before their Cohen's kappa is given (the heat map leaves the cell blank)."""

MIN_WEEK_UNITS = 5
"""Comparisons judged more than once a week needs before its Krippendorff's alpha is given (a gap in the chart)."""


@dataclass(frozen=True)
class _Row:
    project_id: int
    judgment_id: int
    comparison_id: int
    annotator_id: int
    choice: object  # candidate id, or TIE
    strength: int | None
    ratings: dict
    shown_order: list
    time_spent_ms: int | None
    candidate_ids: tuple
    is_gold: bool  # graded as a gold check (annotation.quality.promotion.is_gold_check)
    gold_answer: dict | None
    origin_round: object
    created_at: datetime


def _category(r) -> object:
    """The answer as an agreement statistic's category: the chosen candidate's stored position among how many
    (``(position, k)``), or ``"tie"``. Categories must be shared across comparisons, since chance agreement comes from
    how often each is used overall: candidate ids, new in every comparison, would put it near zero."""
    if r.choice == TIE:
        return TIE
    return (r.candidate_ids.index(r.choice), len(r.candidate_ids)) if r.choice in r.candidate_ids else None


def _mirrored(units: dict) -> dict:
    """Each unit twice, as stored and with its positions reversed. The stored order of a comparison's candidates
    means nothing, so chance agreement must not depend on it: a project whose better answers happen to be stored
    first would otherwise read as agreeing by chance (the prevalence paradox). Observed agreement is unchanged."""
    out = {}
    for key, ratings in units.items():
        out[(key, "stored")] = ratings
        out[(key, "reversed")] = {c: v if v == TIE else (v[1] - 1 - v[0], v[1]) for c, v in ratings.items()}
    return out


def _gold_choice(answer: dict | None):
    if not answer:
        return None
    if answer.get("tie"):
        return TIE
    return answer.get("winner") or (answer.get("ranking") or [None])[0]


def _rows(project_id: int, max_id: int) -> list[_Row]:
    values = (
        Judgment.objects.filter(project_id=project_id, pk__lte=max_id)
        .order_by("pk")
        .values_list(
            "pk",
            "comparison_id",
            "annotator_id",
            "winner_id",
            "tie",
            "ranking",
            "strength",
            "ratings",
            "shown_order",
            "time_spent_ms",
            "comparison__candidate_ids",
            "comparison__is_gold",
            "comparison__gold_answer",
            "comparison__origin",
            "created_at",
        )
    )
    rows = []
    for pk, cmp, ann, winner, tie, ranking, strength, ratings, shown, ms, ids, gold, answer, origin, at in values:
        rows.append(
            _Row(
                project_id=project_id,
                judgment_id=pk,
                comparison_id=cmp,
                annotator_id=ann,
                choice=answer_choice(winner, tie, ranking),
                strength=strength,
                ratings=ratings or {},
                shown_order=list(shown or []),
                time_spent_ms=ms,
                candidate_ids=tuple(ids),
                is_gold=is_gold_check(is_gold=gold, origin=origin, judgment_id=pk),
                gold_answer=answer,
                origin_round=(origin or {}).get("round"),
                created_at=at,
            )
        )
    return rows


def quality_recompute(*, project_id: int, rules: FlagRules | None = None) -> ProjectQuality:
    """Recompute and store the project's figures from all its judgments so far."""
    project = Project.objects.get(pk=project_id)
    max_id = Judgment.objects.filter(project_id=project_id).aggregate(m=Max("pk"))["m"] or 0
    rows = _rows(project_id, max_id)

    choices = _units(rows, _category)
    project_stats = {
        "judgments": len(rows),
        "annotators": len({r.annotator_id for r in rows}),
        "choice": _choice_statistics(choices),
        "cohen_kappa_pairs": _kappa_pairs(choices),
        "over_time": _weekly_choice_agreement([r for r in rows if not r.is_gold]),
        "strength": _strength_statistics(rows),
        "criteria": _criteria_statistics(rows),
        "spans": _span_statistics(project_id, max_id, rows),
        "by_round": {
            str(key): _choice_statistics(_units([r for r in rows if r.origin_round == key], _category))
            for key in sorted({r.origin_round for r in rows if r.origin_round is not None}, key=str)
        },
    }

    gold = {r.comparison_id: _gold_choice(r.gold_answer) for r in rows if r.is_gold}
    labels = [
        Label(item=r.comparison_id, annotator=r.annotator_id, choice=r.choice, options=r.candidate_ids)
        for r in rows
        if r.choice not in (None, TIE) and r.choice in r.candidate_ids
    ]
    fit = reliability_fit(labels, gold={c: g for c, g in gold.items() if g not in (None, TIE)})
    per_annotator = _annotator_figures(rows, fit, choices, gold)
    for annotator_id, checks in _position_figures(project_id, max_id).items():
        if annotator_id in per_annotator:
            per_annotator[annotator_id].update(checks)
    project_stats["reliability"] = {"iterations": fit.iterations, "converged": fit.converged, "labels": len(labels)}

    timed_medians = [f["median_time_ms"] for f in per_annotator.values() if f["median_time_ms"] is not None]
    project_median = stats.median(timed_medians) if timed_medians else None
    judged = defaultdict(int)
    for r in rows:
        judged[r.comparison_id] += 1

    with transaction.atomic():
        AnnotatorQuality.objects.filter(project_id=project_id).delete()
        AnnotatorQuality.objects.bulk_create(
            AnnotatorQuality(
                project_id=project_id,
                annotator_id=annotator_id,
                flags=annotator_flags(figures, project_median_ms=project_median, rules=rules),
                **{k: v for k, v in figures.items() if k in _STORED},
            )
            for annotator_id, figures in per_annotator.items()
        )
        ComparisonConsensus.objects.filter(project_id=project_id).delete()
        ComparisonConsensus.objects.bulk_create(
            (
                ComparisonConsensus(
                    comparison_id=item,
                    project_id=project_id,
                    winner_id=answer,
                    confidence=confidence,
                    judgments=judged[item],
                )
                for item, (answer, confidence) in fit.consensus.items()
            ),
            batch_size=500,
        )
        quality, _ = ProjectQuality.objects.update_or_create(
            project=project,
            defaults={
                "judgment_max_id": max_id,
                "judgment_count": len(rows),
                "statistics": project_stats,
                "computed_at": timezone.now(),
            },
        )
        # The gold pause threshold reads the figures just stored.
        gold_pauses_apply(project=project)
    return quality


_STORED = {
    "judgments",
    "median_time_ms",
    "gold_judged",
    "gold_correct",
    "reliability",
    "weight",
    "agreement_with_consensus",
    "agreement_with_others",
    "left_share",
    "longer_share",
    "position_checks",
    "position_consistent",
}


def _position_figures(project_id: int, max_id: int) -> dict[int, dict]:
    """Per annotator: position checks answered (of judgments up to ``max_id``) and how many were consistent."""
    answered = (
        PositionCheck.objects.filter(project_id=project_id, state=PositionCheckState.ANSWERED, judgment_id__lte=max_id)
        .values("annotator_id")
        .annotate(n=Count("id"), same=Count("id", filter=Q(consistent=True)))
    )
    return {r["annotator_id"]: {"position_checks": r["n"], "position_consistent": r["same"]} for r in answered}


def _units(rows, value) -> dict:
    units: defaultdict[object, dict] = defaultdict(dict)
    for r in rows:
        v = value(r)
        if v is not None:
            units[r.comparison_id][r.annotator_id] = v
    return units


def _rounded(x, digits=4):
    return None if x is None else round(x, digits)


def _kappa_pairs(choices: dict) -> list[dict]:
    """Every two annotators who judged a comparison in common (the heat map's cells): Cohen's kappa from
    MIN_SHARED shared comparisons on, None below; chance from both orders (see :func:`_mirrored`)."""
    kappas = agreement.cohen_kappa_pairs(_mirrored(choices))
    return [
        {
            "annotators": [a, b],
            "kappa": _rounded(kappas[(a, b)]["kappa"]) if v["shared"] >= MIN_SHARED else None,
            "shared": v["shared"],
            "agreement": _rounded(v["agreement"]),
        }
        for (a, b), v in sorted(agreement.cohen_kappa_pairs(choices).items(), key=lambda kv: str(kv[0]))
    ]


def _choice_statistics(units) -> dict:
    pairable = sum(1 for ratings in units.values() if len(ratings) >= 2)
    return {
        "units": len(units),
        "pairable_units": pairable,
        "krippendorff_alpha": _rounded(agreement.krippendorff_alpha(_mirrored(units), level="nominal")),
        "fleiss_kappa": _rounded(agreement.fleiss_kappa(_mirrored(units))),
    }


def _weekly_choice_agreement(rows: list[_Row]) -> list[dict]:
    """Krippendorff's alpha of choices per week (weeks start on Monday, UTC), every week from the first to the last.

    A comparison counts in the week of its latest judgment, with all its judgments: agreement needs two answers to
    the same comparison, and annotators answer one comparison days apart, so bucketing judgments by their own week
    would split most pairs. Gold checks are left out (served to everyone over the project's life, they would all
    land in its last week). ``krippendorff_alpha`` is None where fewer than :data:`MIN_WEEK_UNITS` comparisons of
    the week were judged more than once.
    """
    latest: dict[int, date] = {}
    for r in rows:
        day = r.created_at.astimezone(UTC).date()
        latest[r.comparison_id] = max(latest.get(r.comparison_id, day), day)
    if not latest:
        return []
    monday = {cmp: day - timedelta(days=day.weekday()) for cmp, day in latest.items()}
    by_week: defaultdict[date, list[_Row]] = defaultdict(list)
    for r in rows:
        by_week[monday[r.comparison_id]].append(r)
    weeks, week, last = [], min(by_week), max(by_week)
    while week <= last:
        units = _units(by_week.get(week, []), _category)
        pairable = sum(1 for ratings in units.values() if len(ratings) >= 2)
        alpha = agreement.krippendorff_alpha(_mirrored(units), level="nominal") if pairable >= MIN_WEEK_UNITS else None
        weeks.append(
            {
                "week": week.isoformat(),
                "judgments": len(by_week.get(week, [])),
                "comparisons": len(units),
                "pairable_comparisons": pairable,
                "krippendorff_alpha": _rounded(alpha),
            }
        )
        week += timedelta(days=7)
    return weeks


def _signed_strength(r: _Row) -> float | None:
    """Strength toward the first stored candidate: +|s| when it won, −|s| when the other did, 0 for a tie."""
    if r.choice == TIE:
        return 0.0
    if r.strength is None or len(r.candidate_ids) != 2 or r.choice not in r.candidate_ids:
        return None
    return abs(r.strength) * (1 if r.choice == r.candidate_ids[0] else -1)


def _strength_statistics(rows) -> dict:
    units = _units(rows, _signed_strength)
    if not any(len(v) >= 2 for v in units.values()):
        return {}
    return {
        "krippendorff_alpha_ordinal": _rounded(agreement.krippendorff_alpha(units, level="ordinal")),
        "krippendorff_alpha_interval": _rounded(agreement.krippendorff_alpha(units, level="interval")),
    }


def _criteria_statistics(rows) -> dict:
    by_key: defaultdict[str, defaultdict] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        for candidate, values in r.ratings.items():
            for key, value in (values or {}).items():
                if isinstance(value, int | float):
                    by_key[key][(r.comparison_id, str(candidate))][r.annotator_id] = value
    return {
        key: {
            "krippendorff_alpha_ordinal": _rounded(agreement.krippendorff_alpha(units, level="ordinal")),
            "krippendorff_alpha_interval": _rounded(agreement.krippendorff_alpha(units, level="interval")),
            "pairable_units": sum(1 for v in units.values() if len(v) >= 2),
        }
        for key, units in sorted(by_key.items())
    }


def _span_statistics(project_id: int, max_id: int, rows: list[_Row]) -> dict:
    """Overlap F1 per category, pooled over every pair of annotators who marked the same comparison."""
    marks: defaultdict[int, defaultdict[int, list]] = defaultdict(lambda: defaultdict(list))
    spans = SpanMark.objects.filter(
        judgment__project_id=project_id, judgment__pk__lte=max_id, start__isnull=False
    ).values_list("judgment__comparison_id", "judgment__annotator_id", "candidate_id", "category", "start", "end")
    for comparison_id, annotator_id, candidate_id, category, start, end in spans:
        marks[comparison_id][annotator_id].append((candidate_id, category, start, end))
    # Comparisons judged by several annotators where only some marked spans count too: "no mark" disagrees.
    judged_by: defaultdict[int, set] = defaultdict(set)
    for r in rows:
        if r.comparison_id in marks:
            judged_by[r.comparison_id].add(r.annotator_id)
    pooled: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for comparison_id, annotators in judged_by.items():
        ordered = sorted(annotators)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                for category, f in agreement.span_agreement(marks[comparison_id][a], marks[comparison_id][b]).items():
                    pooled[category][0] += f["overlap"]
                    pooled[category][1] += f["first"] + f["second"]
                    pooled[category][2] += 1
    return {
        category: {"overlap_f1": _rounded(2 * overlap / total if total else None), "annotator_pairs": n}
        for category, (overlap, total, n) in sorted(pooled.items())
    }


def _annotator_figures(rows, fit, choices, gold) -> dict[int, dict]:
    others = agreement.coder_agreement(choices)
    # One pass over the project's candidates, not an IN list of every id (SQLite caps bound parameters).
    project_id = rows[0].project_id if rows else None
    lengths = dict(Candidate.objects.filter(project_id=project_id).annotate(n=Length("text")).values_list("pk", "n"))
    by_annotator: defaultdict[int, list[_Row]] = defaultdict(list)
    for r in rows:
        by_annotator[r.annotator_id].append(r)
    out = {}
    for annotator_id, mine in by_annotator.items():
        times = [r.time_spent_ms for r in mine if r.time_spent_ms is not None]
        gold_rows = [r for r in mine if r.is_gold and gold.get(r.comparison_id) is not None]
        gold_correct = sum(_gold_score(r.choice, gold[r.comparison_id]) for r in gold_rows)
        shared = [
            r for r in mine if not r.is_gold and len(choices[r.comparison_id]) >= 2 and r.comparison_id in fit.consensus
        ]
        agree = sum(r.choice == fit.consensus[r.comparison_id][0] for r in shared)
        pairwise = [r for r in mine if len(r.candidate_ids) == 2 and r.choice in r.candidate_ids]
        left = [r for r in pairwise if len(r.shown_order) == 2]
        sized = [r for r in pairwise if lengths.get(r.candidate_ids[0]) != lengths.get(r.candidate_ids[1])]
        longer = sum(lengths.get(r.choice, 0) == max(lengths.get(c, 0) for c in r.candidate_ids) for r in sized)
        evidence = sum(
            1
            for r in mine
            if r.choice not in (None, TIE) and (len(choices[r.comparison_id]) >= 2 or r.comparison_id in gold)
        )
        reliability = fit.reliability.get(annotator_id) if evidence >= MIN_EVIDENCE else None
        out[annotator_id] = {
            "judgments": len(mine),
            "median_time_ms": int(stats.median(times)) if times else None,
            "timed": len(times),
            "gold_judged": len(gold_rows),
            "gold_correct": gold_correct,
            "reliability": _rounded(reliability),
            "weight": _rounded(reliability_weight(reliability)) if reliability is not None else None,
            "agreement_with_consensus": _rounded(agree / len(shared)) if shared else None,
            "consensus_shared": len(shared),
            "agreement_with_others": _rounded((others.get(annotator_id) or {}).get("agreement")),
            "left_share": _rounded(sum(r.choice == r.shown_order[0] for r in left) / len(left)) if left else None,
            "left_n": len(left),
            "longer_share": _rounded(longer / len(sized)) if sized else None,
            "longer_n": len(sized),
        }
    return out


def _gold_score(choice, expected) -> float:
    """1 for the gold answer, ½ for a tie against a gold winner (or a winner against a gold tie), else 0."""
    if choice == expected:
        return 1.0
    return 0.5 if TIE in (choice, expected) else 0.0


def quality_due(*, project_id: int) -> bool:
    """Whether enough judgments arrived since the last computation to recompute (``QUALITY_MIN_NEW_JUDGMENTS``)."""
    since = ProjectQuality.objects.filter(project_id=project_id).values_list("judgment_max_id", flat=True).first()
    threshold = settings.QUALITY_MIN_NEW_JUDGMENTS
    new = Judgment.objects.filter(project_id=project_id, pk__gt=since or 0).values("pk")[:threshold].count()
    return new >= threshold
