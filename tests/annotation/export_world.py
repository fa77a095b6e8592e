"""A small judged project for the export and labelled-import tests: pairwise and 3-way comparisons, several
annotators (agreeing and not), a tie, a gold check, spans, ratings, rationales, a round's candidates."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from annotation.models import Candidate, Judgment, Membership, Role, SpanMark

from ..factories import ProjectFactory, UserFactory, make_comparison

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def judge(comparison, user, *, winner=None, tie=False, ranking=None, strength=None, day=0, spans=(), **extra):
    ids = comparison.candidate_ids
    judgment = Judgment.objects.create(
        project=comparison.project,
        comparison=comparison,
        annotator=user,
        winner_id=ids[winner] if winner is not None else None,
        tie=tie,
        ranking=[ids[i] for i in ranking] if ranking is not None else None,
        strength=strength,
        ratings=extra.pop("ratings", {str(ids[0]): {"helpful": 4}, str(ids[1]): {"helpful": 2}}),
        rationale=extra.pop("rationale", f"{user.username} on {comparison.external_id}"),
        shown_order=list(reversed(ids)),
        time_spent_ms=extra.pop("time_spent_ms", 1500 + day),
        idempotency_key=f"{user.username}-{comparison.pk}",
    )
    Judgment.objects.filter(pk=judgment.pk).update(created_at=BASE_TIME + timedelta(days=day))
    for candidate_index, start, end, category in spans:
        SpanMark.objects.create(
            judgment=judgment, candidate_id=ids[candidate_index], start=start, end=end, category=category
        )
    return judgment


def judged_project(name="Exported"):
    project = ProjectFactory(name=name)
    users = [UserFactory(username=n) for n in ("anna", "bob", "cara")]
    for user in users:
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    anna, bob, cara = users
    pairwise = []
    for i in range(6):
        comparison = make_comparison(project, texts=[f"Answer A{i}: yes, because {i}.", f"Answer B{i}: no."])
        comparison.prompt.metadata = {"source": "unit tests", "license": "CC-BY-4.0"}
        comparison.prompt.split = "eval" if i == 5 else "train"
        comparison.prompt.context = [{"role": "system", "content": "Be brief."}] if i == 0 else []
        comparison.prompt.save()
        pairwise.append(comparison)
    # Unanimous, strong; with spans on the loser.
    for day, user in enumerate(users):
        judge(pairwise[0], user, winner=0, strength=3, day=day, spans=[(1, 0.0, 6.0, "incorrect")])
    # 2 to 1.
    judge(pairwise[1], anna, winner=0, strength=1, day=1)
    judge(pairwise[1], bob, winner=0, strength=2, day=2)
    judge(pairwise[1], cara, winner=1, strength=1, day=3)
    # Split 1-1, then a single judgment, a tie, and one from the eval split.
    judge(pairwise[2], anna, winner=0, day=4)
    judge(pairwise[2], bob, winner=1, day=5)
    judge(pairwise[3], cara, winner=1, strength=2, day=6)
    judge(pairwise[4], anna, tie=True, day=7)
    judge(pairwise[5], bob, winner=1, strength=1, day=8)
    # A 3-way comparison made by training round 7, ranked twice.
    ranked = make_comparison(project, arity=3)
    ranked.origin = {"round": 7}
    ranked.save()
    Candidate.objects.filter(pk__in=ranked.candidate_ids).update(
        source="generated", origin={"round": 7, "model_version": 3}
    )
    judge(ranked, anna, ranking=[2, 0, 1], day=9)
    judge(ranked, cara, ranking=[2, 1, 0], day=10)
    # A gold check answered once.
    gold = make_comparison(project, is_gold=True, gold_answer={"tie": True})
    gold.gold_answer = {"winner": gold.candidate_ids[1]}
    gold.save()
    judge(gold, bob, winner=0, day=11)
    return SimpleNamespace(project=project, users=users, pairwise=pairwise, ranked=ranked, gold=gold)
