"""Judgments: check an answer against the project's labeling schema, then record it.

``judgment_check`` holds every rule about what an answer may contain;
``judgment_submit`` writes one answer, idempotent on the client's key, and keeps
the comparison's counters exact under concurrency.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Length
from django.utils import timezone

from .access import Refused, member_sql
from .models import (
    Assignment,
    AssignmentState,
    Candidate,
    Comparison,
    ComparisonStatus,
    Judgment,
    Modality,
    Project,
    SpanMark,
)
from .quality import position
from .queue import NoLiveLease, QueueError, single_statement
from .schema import LabelingSchema, parse_schema
from .selectors import partial_instance
from .statements import compact_sql, prepared_cursor


class JudgmentInvalid(ValueError):
    """The answer breaks the project's schema; ``errors`` maps field → messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


class NotNeeded(QueueError):
    """The comparison no longer needs this judgment; nothing was written (HTTP 409)."""

    code = "not_needed"


class IdempotencyKeyReused(QueueError):
    code = "idempotency_key_reused"


@dataclass
class SpanInput:
    candidate: int
    category: str
    start: float | None = None
    end: float | None = None
    box: list[float] | None = None
    note: str = ""


@dataclass
class JudgmentInput:
    """An answer as the API receives it (already type-checked by the serializer)."""

    winner: int | None = None
    tie: bool = False
    ranking: list[int] | None = None
    strength: int | None = None
    ratings: dict[str, dict[str, int]] = field(default_factory=dict)
    spans: list[SpanInput] = field(default_factory=list)
    rationale: str = ""
    shown_order: list[int] = field(default_factory=list)
    time_spent_ms: int | None = None


def judgment_check(*, answer: JudgmentInput, candidate_ids: list[int], schema: LabelingSchema, modality: str) -> None:
    """Raise :class:`JudgmentInvalid` naming every field that breaks a rule, for a comparison of
    ``candidate_ids`` in a project of ``schema`` and ``modality``."""
    errors: dict[str, list[str]] = {}

    def err(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    ids = list(candidate_ids)
    id_set = set(ids)

    given = [answer.winner is not None, answer.tie, answer.ranking is not None]
    if sum(given) != 1:
        err("winner", "Give exactly one of: winner, tie, or ranking.")
    if answer.winner is not None and answer.winner not in id_set:
        err("winner", f"Candidate {answer.winner} is not in this comparison (candidates: {ids}).")
    if answer.tie and not schema.allow_tie:
        err("tie", "This project does not allow ties.")
    if answer.ranking is not None and sorted(answer.ranking) != sorted(ids):
        err("ranking", f"Must list every candidate of the comparison exactly once, best first: {ids}.")

    if answer.strength is not None:
        if answer.tie:
            if answer.strength != 0:
                err("strength", "A tie prefers neither candidate: leave strength out (or give 0).")
        elif schema.strength is None:
            err("strength", "This project records no preference strength; leave it out.")
        elif answer.winner is None:
            err("strength", "Strength is how much better the winner is: only an answer with a winner has one.")
        elif not schema.strength.min <= answer.strength <= schema.strength.max:
            err(
                "strength",
                f"Must be between {schema.strength.min} and {schema.strength.max}: how much better the winner is.",
            )

    criteria = schema.criterion_by_key
    for cand_key, per_criterion in answer.ratings.items():
        path = f"ratings.{cand_key}"
        if not (cand_key.isascii() and cand_key.isdecimal()) or int(cand_key) not in id_set:
            err(path, f"Not a candidate of this comparison (candidates: {ids}).")
            continue
        for key, value in per_criterion.items():
            criterion = criteria.get(key)
            if criterion is None:
                known = ", ".join(criteria) or "none"
                err(f"{path}.{key}", f"Unknown criterion (this project's: {known}).")
            elif not criterion.min <= value <= criterion.max:
                err(f"{path}.{key}", f"Must be between {criterion.min} and {criterion.max}.")

    if answer.spans:
        _check_spans(answer.spans, ids, schema, modality, err)

    rationale = answer.rationale.strip()
    if schema.rationale == "required" and not rationale:
        err("rationale", "This project requires a written rationale.")
    if schema.rationale == "off" and rationale:
        err("rationale", "This project does not collect rationales; leave it empty.")

    if answer.shown_order and sorted(answer.shown_order) != sorted(ids):
        err("shown_order", f"Must list every candidate of the comparison exactly once: {ids}.")

    if errors:
        raise JudgmentInvalid(errors)


def _check_spans(spans: list[SpanInput], ids: list[int], schema: LabelingSchema, modality: str, err) -> None:
    categories = schema.span_category_keys
    if not categories:
        err("spans", "This project has no span categories; leave spans out.")
        return
    text_lengths = {}
    if modality == Modality.TEXT:
        text_lengths = dict(Candidate.objects.filter(pk__in=ids).annotate(n=Length("text")).values_list("pk", "n"))
    for i, span in enumerate(spans):
        path = f"spans[{i}]"
        if span.candidate not in ids:
            err(f"{path}.candidate", f"Candidate {span.candidate} is not in this comparison (candidates: {ids}).")
            continue
        if span.category not in categories:
            err(
                f"{path}.category",
                f"Unknown category {span.category!r} (this project's: {', '.join(sorted(categories))}).",
            )
        if modality == Modality.IMAGE:
            box = span.box
            if box is None or span.start is not None or span.end is not None:
                err(path, "Image spans are boxes: give box [x, y, width, height] and no start/end.")
            elif len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):
                err(f"{path}.box", "Must be four numbers [x, y, width, height], fractions of the image size.")
            elif not (
                0 <= box[0]
                and 0 <= box[1]
                and box[2] > 0
                and box[3] > 0
                and box[0] + box[2] <= 1
                and box[1] + box[3] <= 1
            ):
                err(
                    f"{path}.box",
                    "Must lie inside the image: x, y ≥ 0, width, height > 0, x + width ≤ 1, y + height ≤ 1.",
                )
            continue
        if span.box is not None or span.start is None or span.end is None:
            err(path, "Give start and end (and no box).")
            continue
        if modality == Modality.TEXT:
            if span.start != int(span.start) or span.end != int(span.end):
                err(path, "Text offsets are whole Unicode code-point indices.")
                continue
            length = text_lengths.get(span.candidate, 0)
            if not 0 <= span.start < span.end <= length:
                err(path, f"Must satisfy 0 ≤ start < end ≤ {length} (the candidate's length in code points).")
        elif not (math.isfinite(span.start) and math.isfinite(span.end) and 0 <= span.start < span.end):
            err(path, "Times are seconds with 0 ≤ start < end.")


def judgment_submit(
    *, comparison_id: int, annotator_id: int, answer: JudgmentInput, idempotency_key: str, member: bool = False
) -> tuple[Judgment, bool]:
    """Record the annotator's answer; returns ``(judgment, created)``.

    Only a comparison the queue served to the annotator can be answered (raises
    :class:`~annotation.queue.NoLiveLease` otherwise: not claimed, skipped or
    released), so nobody answers gold checks or jumps the queue by guessing ids.
    A retry with the same key returns the first judgment (``created=False``). A
    submission whose lease expired is kept if the comparison still needs it;
    otherwise :class:`NotNeeded` is raised and nothing is written. With ``member`` (the API's call), only for a
    member of the comparison's project (annotation.access): :class:`~annotation.access.Refused` otherwise, and for
    an id that does not exist; without it, such an id raises ``Comparison.DoesNotExist``.
    """
    now = timezone.now()
    judgment = Judgment(
        comparison_id=comparison_id,
        annotator_id=annotator_id,
        winner_id=answer.winner,
        tie=answer.tie,
        ranking=answer.ranking,
        strength=answer.strength,
        ratings={str(k): v for k, v in answer.ratings.items()},
        rationale=answer.rationale,
        shown_order=answer.shown_order,
        time_spent_ms=answer.time_spent_ms,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    spans = [
        SpanMark(candidate_id=s.candidate, start=s.start, end=s.end, box=s.box, category=s.category, note=s.note)
        for s in answer.spans
    ]
    write = _write_postgres if connection.vendor == "postgresql" else _write_portable
    try:
        target = write(judgment, spans, answer, member, now)
    except (_AlreadyAnswered, IntegrityError):
        # Usually a retry of a submission that went through (perhaps racing with
        # it), or the key was used for another comparison: the key tells which.
        existing = _judgment_for_key(annotator_id, idempotency_key, comparison_id)
        if existing is not None:
            if not _same_answer(existing, answer):
                raise _key_reused(idempotency_key) from None
            return existing, False
        # Or the comparison is on the annotator's screen again as a position check (looked up only here, off
        # the ordinary path): the answer is kept on the check, and no judgment is written.
        try:
            repeat = position.position_check_answer(
                comparison_id=comparison_id, annotator_id=annotator_id, answer=answer, idempotency_key=idempotency_key
            )
        except position.CheckKeyReused:
            raise _key_reused(idempotency_key) from None
        if repeat is not None:
            check, created = repeat
            return _check_as_judgment(check), created
        raise NotNeeded("You have already judged this comparison.") from None
    if judgment.pk is None:
        raise NotNeeded(
            "This comparison no longer needs your judgment: your lease ran out and other annotators "
            "have completed it. Nothing was saved; ask for the next task."
        )
    # The spans just written, so callers can show the judgment without reading it back.
    judgment._prefetched_objects_cache = {"spans": spans}
    project = target.project
    if project.position_check_share > 0 and not target.is_gold:
        position.position_check_schedule(
            project=project, judgment_id=judgment.pk, comparison_id=comparison_id, annotator_id=annotator_id
        )
    return judgment, True


@dataclass(frozen=True)
class ProjectRules:
    """What checking an answer needs of its project (``judgment_check``)."""

    project_id: int
    schema: dict  # as stored
    modality: str
    parsed: LabelingSchema


@dataclass(frozen=True)
class _Target:
    """The comparison a submission wrote to: its gold flag, and its project with the position-check settings."""

    project: Project
    is_gold: bool


# The rules of the project each annotator last submitted to, per process, so that a submission is checked before
# its one statement instead of after a read. The statement writes only if the comparison is in that project and
# the rules are still the stored ones (and otherwise returns them: checked again, then written), so a stale entry
# costs a second statement, never a wrong answer. Bounded by the annotators this process serves.
_rules_by_project: dict[int, ProjectRules] = {}
_project_by_annotator: dict[int, int] = {}
_RULES_KEPT = 10_000


def _rules_guess(annotator_id: int) -> ProjectRules | None:
    project_id = _project_by_annotator.get(annotator_id)
    return None if project_id is None else _rules_by_project.get(project_id)


def _rules_remember(annotator_id: int, rules: ProjectRules) -> None:
    if len(_project_by_annotator) >= _RULES_KEPT:
        _project_by_annotator.clear()
        _rules_by_project.clear()
    _rules_by_project[rules.project_id] = rules
    _project_by_annotator[annotator_id] = rules.project_id


def _rules_from(project_id: int, schema, modality: str) -> ProjectRules:
    schema = _json(schema)
    return ProjectRules(project_id=project_id, schema=schema, modality=modality, parsed=parse_schema(schema))


def _named_candidates(answer: JudgmentInput) -> tuple[list[int], int | None]:
    """The candidate ids the answer names, and how many candidates its ranking or shown order lists (None if it
    gives neither): checked against the comparison by the submit statement itself."""
    named = set(answer.ranking or ()) | set(answer.shown_order) | {s.candidate for s in answer.spans}
    named |= {int(k) for k in answer.ratings if k.isascii() and k.isdecimal()}
    if answer.winner is not None:
        named.add(answer.winner)
    if answer.ranking is not None:
        return sorted(named), len(answer.ranking)
    return sorted(named), (len(answer.shown_order) if answer.shown_order else None)


def _valid_before_reading(answer: JudgmentInput, rules: ProjectRules | None) -> bool:
    """Whether the answer passes ``judgment_check`` under the guessed rules, with the candidates it names standing
    in for the comparison's. Sound because the statement then writes only if those candidates are in the
    comparison and a listed order covers all of its candidates; a failure here is told with the real rules."""
    if rules is None:
        return False
    named, _ = _named_candidates(answer)
    if not all(-(2**63) <= i < 2**63 for i in named):
        return False  # not a candidate id of any comparison
    try:
        judgment_check(answer=answer, candidate_ids=named, schema=rules.parsed, modality=rules.modality)
    except JudgmentInvalid:
        return False
    return True


def _key_reused(key: str) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"Idempotency-Key {key!r} was already used for a different answer to this "
        "comparison; a retry must send the same answer, a new answer needs a new key."
    )


def _check_as_judgment(check) -> Judgment:
    """A position check's answer in the shape of a judgment (never saved), so the submit response looks like any
    other: the annotator cannot tell a check from a task. Its id is the first judgment's."""
    given = check.answer
    judgment = Judgment(
        pk=check.judgment_id,
        project_id=check.project_id,
        comparison_id=check.comparison_id,
        annotator_id=check.annotator_id,
        winner_id=given["winner"],
        tie=given["tie"],
        ranking=given["ranking"],
        strength=given["strength"],
        ratings={str(k): v for k, v in given["ratings"].items()},
        rationale=given["rationale"],
        shown_order=given["shown_order"],
        time_spent_ms=given["time_spent_ms"],
        idempotency_key=check.idempotency_key,
        created_at=check.answered_at,
    )
    spans = [
        SpanMark(
            candidate_id=s["candidate"],
            start=s["start"],
            end=s["end"],
            box=s["box"],
            category=s["category"],
            note=s["note"],
        )
        for s in given["spans"]
    ]
    judgment._prefetched_objects_cache = {"spans": spans}
    return judgment


class _AlreadyAnswered(Exception):
    """Raised inside this module when the annotator already answered the comparison."""


def _same_answer(judgment: Judgment, answer: JudgmentInput) -> bool:
    """Whether a retry says what the judgment recorded: the answer itself (winner, tie, ranking, strength,
    ratings, rationale, spans), not how long it took or the order it was shown in."""
    spans = sorted((s.candidate_id, s.category, s.start, s.end, s.box, s.note) for s in judgment.spans.all())
    return (
        judgment.winner_id == answer.winner
        and judgment.tie == answer.tie
        and judgment.ranking == answer.ranking
        and judgment.strength == answer.strength
        and judgment.ratings == {str(k): v for k, v in answer.ratings.items()}
        and judgment.rationale == answer.rationale
        and spans == sorted((s.candidate, s.category, s.start, s.end, s.box, s.note) for s in answer.spans)
    )


def _judgment_for_key(annotator_id: int, key: str, comparison_id: int) -> Judgment | None:
    # With its spans: the caller answers with them, without reading the judgment again.
    judgment = Judgment.objects.filter(annotator_id=annotator_id, idempotency_key=key).prefetch_related("spans").first()
    if judgment is not None and judgment.comparison_id != comparison_id:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was already used for comparison {judgment.comparison_id}; use a new key."
        )
    return judgment


# The whole submission as one statement (one round trip, one commit). `target` reads the comparison and its
# project, checks (with %(gate)s) that the annotator is a member there, and that the answer fits: checked in
# Python against the rules of %(project)s, which must be the comparison's project with the same schema and
# modality, and naming only this comparison's candidates. When it does not fit, nothing is locked or written and
# the rules come back to be checked against. Then: lock this annotator's assignment (the lease reaper and a racing
# retry both go through that row, so its state decides who counts the lease), bump the comparison's counters only
# while it still wants a judgment once the other annotators' live leases are counted, and write the judgment, its
# spans and the assignment's outcome. When the gate fails nothing after it writes a row.
_PG_SUBMIT = (
    """
WITH target AS (
    SELECT c.project_id, c.is_gold, c.candidate_ids, p.schema, p.modality,
           p.position_check_share, p.position_check_after_min, p.position_check_after_max,
           CASE WHEN %(gate)s THEN """
    + member_sql(project="c.project_id", user="%(user)s")
    + """ ELSE true END AS allowed,
           COALESCE(c.project_id = %(project)s AND p.schema = %(schema)s::jsonb AND p.modality = %(modality)s
                    AND c.candidate_ids @> %(named)s::jsonb
                    AND (%(listed)s::int IS NULL OR jsonb_array_length(c.candidate_ids) = %(listed)s::int),
                    false) AS fits
    FROM annotation_comparison c
    JOIN annotation_project p ON p.id = c.project_id
    WHERE c.id = %(comparison)s
), mine AS (
    SELECT id, state FROM annotation_assignment
    WHERE comparison_id = %(comparison)s AND annotator_id = %(user)s
      AND EXISTS (SELECT 1 FROM target WHERE allowed AND fits)
    FOR UPDATE
), lease AS (
    SELECT count(*) FILTER (WHERE state = 'leased') AS held,
           count(*) FILTER (WHERE state = 'submitted') AS answered,
           count(*) FILTER (WHERE state IN ('leased', 'expired')) AS served
    FROM mine
), bump AS (
    UPDATE annotation_comparison c
    SET judged = c.judged + 1,
        leased = c.leased - lease.held,
        status = CASE WHEN c.judged + 1 >= c.wanted THEN 'done' ELSE c.status END
    FROM lease
    WHERE c.id = %(comparison)s AND c.status = 'open' AND lease.answered = 0 AND lease.served = 1
      AND c.judged < c.wanted - c.leased + lease.held
    RETURNING c.id, c.project_id
), judgment AS (
    INSERT INTO annotation_judgment
        (project_id, comparison_id, annotator_id, winner_id, tie, ranking, strength, ratings,
         rationale, shown_order, time_spent_ms, idempotency_key, lease_lost, created_at)
    SELECT bump.project_id, bump.id, %(user)s, %(winner)s, %(tie)s, %(ranking)s::jsonb, %(strength)s,
           %(ratings)s::jsonb, %(rationale)s, %(shown_order)s::jsonb, %(time_spent_ms)s, %(key)s,
           lease.held = 0, %(now)s
    FROM bump, lease
    RETURNING id
), spans AS (
    INSERT INTO annotation_spanmark (judgment_id, candidate_id, start, "end", box, category, note)
    SELECT judgment.id, s.candidate, s.start, s."end", s.box, s.category, s.note
    FROM judgment, jsonb_to_recordset(%(spans)s::jsonb)
        AS s(candidate bigint, start double precision, "end" double precision, box jsonb, category text, note text)
), outcome AS (
    UPDATE annotation_assignment SET state = 'submitted', updated_at = %(now)s
    WHERE id = (SELECT id FROM mine) AND EXISTS (SELECT 1 FROM judgment)
)
SELECT target.allowed, target.fits, (SELECT id FROM judgment), lease.held, lease.answered, lease.served,
       target.project_id, target.is_gold, target.position_check_share, target.position_check_after_min,
       target.position_check_after_max,
       -- the rules to check the answer against, only when it did not fit
       CASE WHEN NOT target.fits THEN target.candidate_ids END,
       CASE WHEN NOT target.fits THEN target.schema END,
       CASE WHEN NOT target.fits THEN target.modality END
FROM target, lease
"""
)

_PG_SUBMIT = compact_sql(_PG_SUBMIT)

# A project's rules can change between reading them and the write that checks them; never forever.
_SUBMIT_ATTEMPTS = 3


def _write_postgres(judgment: Judgment, spans: list[SpanMark], answer: JudgmentInput, gate: bool, now) -> _Target:
    """Write the judgment (``judgment.pk`` set) or nothing (``judgment.pk`` None: the comparison no longer needs
    it); raises what the caller tells the client."""
    named, listed = _named_candidates(answer)
    given = {
        "winner": judgment.winner_id,
        "tie": judgment.tie,
        "ranking": _json_or_null(judgment.ranking),
        "strength": judgment.strength,
        "ratings": json.dumps(judgment.ratings),
        "rationale": judgment.rationale,
        "shown_order": json.dumps(judgment.shown_order),
        "time_spent_ms": judgment.time_spent_ms,
        "key": judgment.idempotency_key,
        "spans": json.dumps([span_as_dict(span) for span in spans]),
        "named": json.dumps(named),
        "listed": listed,
    }
    # Without rules to check against, the statement only reads them: the answer stays out of it (an unchecked
    # value, such as an id past 64 bits, would fail the statement rather than the check).
    unread = dict.fromkeys(given)
    rules = _rules_guess(judgment.annotator_id)
    if not _valid_before_reading(answer, rules):
        rules = None
    for _ in range(_SUBMIT_ATTEMPTS):
        params = {
            "comparison": judgment.comparison_id,
            "user": judgment.annotator_id,
            "gate": gate,
            "now": now,
            "project": rules and rules.project_id,
            "schema": rules and json.dumps(rules.schema),
            "modality": rules and rules.modality,
            **(given if rules else unread),
        }
        with single_statement(), prepared_cursor() as cursor:
            cursor.execute(_PG_SUBMIT, params)
            row = cursor.fetchone()
        if row is None:
            raise Refused if gate else Comparison.DoesNotExist
        allowed, fits, judgment_id, held, answered, served, project_id, is_gold, *settings = row[:11]
        if not allowed:
            raise Refused
        if fits:
            break
        candidate_ids, schema, modality = row[11:]
        rules = _rules_from(project_id, schema, modality)
        _rules_remember(judgment.annotator_id, rules)
        judgment_check(answer=answer, candidate_ids=_json(candidate_ids), schema=rules.parsed, modality=modality)
    else:
        raise RuntimeError("The project's labeling schema kept changing during this submission; send it again.")
    _rules_remember(judgment.annotator_id, rules)
    if answered:
        raise _AlreadyAnswered
    if not served:
        raise _not_served()
    target = _target(project_id, is_gold, *settings)
    judgment.project_id = project_id
    if judgment_id is not None:
        judgment.pk = judgment_id
        judgment.lease_lost = not held
        for span in spans:
            span.judgment_id = judgment_id
    return target


def _target(project_id, is_gold, share, after_min, after_max) -> _Target:
    project = partial_instance(
        Project,
        id=project_id,
        position_check_share=share,
        position_check_after_min=after_min,
        position_check_after_max=after_max,
    )
    return _Target(project=project, is_gold=bool(is_gold))


def span_as_dict(span: SpanMark) -> dict:
    """A span mark as plain JSON (the API's and the submit statement's shape)."""
    return {
        "candidate": span.candidate_id,
        "start": span.start,
        "end": span.end,
        "box": span.box,
        "category": span.category,
        "note": span.note,
    }


def _json_or_null(value) -> str | None:
    return None if value is None else json.dumps(value)


# SQLite's twin reads the comparison, its project, the gate and the annotator's assignment first, in the same
# immediate transaction as the writes (SQLite serialises writers, so the order of the steps is what keeps it
# correct), and checks the answer against the rules it read.
_SQLITE_TARGET = (
    """
SELECT c.project_id, c.is_gold, p.position_check_share, p.position_check_after_min, p.position_check_after_max,
       c.candidate_ids, p.schema, p.modality,
       CASE WHEN %(gate)s THEN """
    + member_sql(project="c.project_id", user="%(user)s")
    + """ ELSE 1 END,
       (SELECT a.state FROM annotation_assignment a WHERE a.comparison_id = c.id AND a.annotator_id = %(user)s)
FROM annotation_comparison c
JOIN annotation_project p ON p.id = c.project_id
WHERE c.id = %(comparison)s
"""
)


def _write_portable(judgment: Judgment, spans: list[SpanMark], answer: JudgmentInput, gate: bool, now) -> _Target:
    """The same steps as ``_PG_SUBMIT``, in one transaction."""
    comparison_id, annotator_id = judgment.comparison_id, judgment.annotator_id
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SQLITE_TARGET, {"comparison": comparison_id, "user": annotator_id, "gate": gate})
        row = cursor.fetchone()
        if row is None:
            raise Refused if gate else Comparison.DoesNotExist
        project_id, is_gold, share, after_min, after_max, candidate_ids, schema, modality, allowed, state = row
        if not allowed:
            raise Refused
        rules = _rules_from(project_id, schema, modality)
        judgment_check(answer=answer, candidate_ids=_json(candidate_ids), schema=rules.parsed, modality=modality)
        target = _target(project_id, is_gold, share, after_min, after_max)
        judgment.project_id = project_id
        if state == AssignmentState.SUBMITTED:
            raise _AlreadyAnswered
        if state not in (AssignmentState.LEASED, AssignmentState.EXPIRED):
            raise _not_served()
        held = int(state == AssignmentState.LEASED)
        updated = Comparison.objects.filter(
            pk=comparison_id, status=ComparisonStatus.OPEN, judged__lt=F("wanted") - F("leased") + held
        ).update(
            judged=F("judged") + 1,
            leased=F("leased") - held,
            status=Case(When(judged__gte=F("wanted") - 1, then=Value(ComparisonStatus.DONE)), default=F("status")),
        )
        if not updated:
            return target
        judgment.lease_lost = not held
        judgment.save(force_insert=True)
        for span in spans:
            span.judgment = judgment
        if spans:
            SpanMark.objects.bulk_create(spans)
        Assignment.objects.filter(comparison_id=comparison_id, annotator_id=annotator_id).update(
            state=AssignmentState.SUBMITTED, updated_at=now
        )
    return target


def _json(value):
    """JSON columns of raw queries come as text (Django's Postgres backend reads jsonb as text), or decoded."""
    return json.loads(value) if isinstance(value, str) else value


def _not_served() -> NoLiveLease:
    return NoLiveLease(
        "You were not served this comparison, or you skipped or released it: ask for the next task "
        "(GET /api/v1/projects/{id}/next/) and answer that one."
    )
