"""The flywheel, unattended: simulated annotators and policy rounds, turn after turn, measured by a hidden judge.

Each turn: simulated annotators answer the queue through the same service functions as people
(``comparison_claim``, ``judgment_submit``), each picking by a **hidden preference** the round's reward model never
sees (``training.ml.hidden_preference``), with label noise; then the scheduler (``rounds_schedule``, as in
production) starts the project's next policy round, which runs here in-process. After every round the active
policy answers the eval prompts with fixed seeds and the hidden preference scores them: if the loop learns, that
score rises.

``manage.py flywheel --simulate`` prints the table; ``bench/flywheel_bench.py`` repeats it over seeds.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from annotation.judgments import JudgmentInput, judgment_submit
from annotation.models import Candidate, Comparison, Membership, Project, Role
from annotation.queue import comparison_claim
from annotation.schema import parse_schema

from . import registry
from .backbone_policy import backbone_for_loading
from .config import round_config_build
from .models import ModelKind, Round, RoundStatus
from .prompts_source import eval_prompts, round_prompts
from .rounds import round_run
from .scheduling import judgments_counted, rounds_schedule
from .win_rates import HEAD_TO_HEAD


class FlywheelStopped(Exception):
    """The flywheel cannot go on (no round started, a round failed); the message says why."""


@dataclass(frozen=True)
class FlywheelConfig:
    rounds: int = 3
    """Policy rounds to run."""
    labels_per_round: int = 64
    """Judgments the simulated annotators give before each round (fewer when the queue runs dry)."""
    annotators: int = 3
    """Simulated annotators (users ``sim-annotator-<i>``); each answers a comparison at most once, like people."""
    noise: float = 0.1
    """Share of labels that are coin flips instead of the hidden preference's choice."""
    eval_samples: int = 4
    """Answers per eval prompt when measuring a policy under the hidden preference (same seeds every round)."""
    eval_prompts: int = 16
    """Eval-split prompts the measurement uses (train prompts when the project has none)."""
    seed: int = 0
    """Seeds the annotators' noise, the rounds' training and the measurement's sampling."""


@dataclass
class FlywheelRow:
    round: int
    """0 = before any round (the base policy)."""
    hidden_reward: float
    """Mean hidden-preference score of the active policy's answers to the eval prompts."""
    round_id: int | None = None
    judgments: int = 0
    rm_accuracy: float | None = None
    hidden_win_rate: float | None = None
    """How often the hidden preference prefers the new policy's answer to the previous one's (head-to-head pairs)."""
    kl: float | None = None
    length: float | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)


def flywheel_run(
    *, project: Project, preference, config: FlywheelConfig, on_row: Callable[[FlywheelRow], None] | None = None
) -> list[FlywheelRow]:
    """Run ``config.rounds`` turns of the loop on ``project`` (its training settings must name a policy)."""
    _prepare(project, config)
    annotators = simulated_annotators(project, config.annotators)
    rng = random.Random(config.seed)
    rows = [FlywheelRow(round=0, hidden_reward=hidden_reward(project, preference, config))]
    _emit(rows[-1], on_row)
    for number in range(1, config.rounds + 1):
        given = annotators_label(project, annotators, preference, config=config, rng=rng)
        done = _round_by_scheduler(project, given)
        rows.append(_row(number, done, given, project, preference, config))
        _emit(rows[-1], on_row)
    return rows


def _prepare(project: Project, config: FlywheelConfig) -> None:
    settings = dict(project.training_settings or {})
    if not settings.get("policy"):
        raise FlywheelStopped("The project's training settings name no policy: set 'policy' (e.g. builtin:smollm2).")
    settings.update(schedule=True, seed=config.seed)
    project.training_settings = settings
    project.save(update_fields=["training_settings"])


def simulated_annotators(project: Project, count: int) -> list:
    users = []
    for i in range(1, count + 1):
        user, _ = get_user_model().objects.get_or_create(username=f"sim-annotator-{i}")
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.ANNOTATOR})
        users.append(user)
    return users


def annotators_label(project: Project, annotators: list, preference, *, config: FlywheelConfig, rng) -> int:
    """Up to ``labels_per_round`` judgments, the annotators taking turns; returns how many were given."""
    schema = parse_schema(project.schema)
    rationale = f"Simulated annotator; hidden preference {preference.name}."
    given, idle = 0, set()
    while given < config.labels_per_round and len(idle) < len(annotators):
        annotator = (
            annotators[given % len(annotators)] if not idle else rng.choice([a for a in annotators if a.pk not in idle])
        )
        claim = comparison_claim(project_id=project.pk, annotator_id=annotator.pk)
        if claim is None:
            idle.add(annotator.pk)
            continue
        comparison = Comparison.objects.select_related("project").get(pk=claim.comparison_id)
        answer = _answer(comparison, preference, schema, rng=rng, noise=config.noise)
        answer.rationale = rationale if schema.rationale != "off" else ""
        judgment_submit(
            comparison_id=comparison.pk,
            annotator_id=annotator.pk,
            answer=answer,
            idempotency_key=f"sim-{annotator.pk}-{comparison.pk}",
        )
        given += 1
    return given


def _answer(comparison: Comparison, preference, schema, *, rng, noise: float) -> JudgmentInput:
    from .ml.hidden_preference import simulated_choice

    ids = list(comparison.candidate_ids)
    answers = candidate_answers(ids)
    prompt = comparison.prompt.text
    scores = preference.score([prompt] * len(ids), [answers[i] for i in ids])
    shown = ids[:]
    rng.shuffle(shown)
    if len(ids) != 2:
        ranking = sorted(ids, key=lambda i: -scores[ids.index(i)])
        return JudgmentInput(ranking=ranking, shown_order=shown)
    pick = simulated_choice(scores[0], scores[1], noise=noise, rng=rng)
    if pick is None:
        return (
            JudgmentInput(tie=True, shown_order=shown)
            if schema.allow_tie
            else JudgmentInput(winner=ids[rng.randrange(2)], shown_order=shown)
        )
    return JudgmentInput(winner=ids[pick], shown_order=shown)


def candidate_answers(ids: list[int]) -> dict[int, str | bytes]:
    """What the hidden preference judges of each candidate: its stored media's bytes (read through the field's
    storage: the local folder or S3), else its text."""
    answers: dict[int, str | bytes] = {}
    for candidate in Candidate.objects.filter(pk__in=ids).only("pk", "text", "media"):
        if candidate.media:
            with candidate.media.open("rb") as file:
                answers[candidate.pk] = file.read()
        else:
            answers[candidate.pk] = candidate.text
    return answers


def _round_by_scheduler(project: Project, given: int) -> Round:
    # The threshold is what the scheduler counts of what the annotators just gave (after a policy round, only the
    # judgments of its pushed comparisons): its own rule then starts the round.
    counted, _ = judgments_counted(project=project, policy=True, limit=max(given, 1))
    if given and not counted:
        raise FlywheelStopped(
            f"None of the {given} new judgments was of the last round's pushed comparisons: the scheduler waits for "
            "those."
        )
    project.training_settings = {**project.training_settings, "min_new_judgments": max(counted, 1)}
    project.save(update_fields=["training_settings"])
    started = rounds_schedule(projects=[project.pk], enqueue=False)
    if not started:
        raise FlywheelStopped(
            f"The scheduler started no round after {given} new judgments (the queue may be empty, or a round is live)."
        )
    done = round_run(round_id=started[0].pk)
    if done.status != RoundStatus.SUCCEEDED:
        raise FlywheelStopped(f"Round {done.pk} {done.status}: {done.error}")
    return done


def _row(number: int, done: Round, given: int, project: Project, preference, config: FlywheelConfig) -> FlywheelRow:
    policy = done.metrics.get("policy") or {}
    return FlywheelRow(
        round=number,
        round_id=done.pk,
        judgments=given,
        rm_accuracy=((done.metrics.get("eval") or {}).get("accuracy")),
        hidden_reward=hidden_reward(project, preference, config),
        hidden_win_rate=hidden_win_rate(done, preference),
        kl=policy.get("kl_to_reference"),
        length=policy.get("mean_tokens_new"),
        step_seconds={s["name"]: s.get("seconds", 0.0) for s in done.steps},
    )


def hidden_reward(project: Project, preference, config: FlywheelConfig) -> float:
    """Mean hidden-preference score of the active policy (the base model before any round) on the eval prompts,
    ``eval_samples`` answers each, sampled with the same seeds every time it is measured."""
    from .ml.modality import modality_for

    prompts = eval_prompts(project_id=project.pk, count=config.eval_prompts) or round_prompts(
        project_id=project.pk, count=config.eval_prompts, selection="random", seed=config.seed
    )
    settings = round_config_build(project_settings=project.training_settings)
    modality = modality_for(project.modality)
    texts = [p.text for p in prompts]
    answers = modality.generate(
        _active_policy_path(project),
        texts,
        k=config.eval_samples,
        sampling=modality.sampling(settings.snapshot()),
        base_seed=10_000 + config.seed,
        batch_size=settings.generation_batch_size,
        progress=None,
    )
    flat_prompts = [t for t, row in zip(texts, answers, strict=True) for _ in row]
    scores = preference.score(flat_prompts, [g.reward_input for row in answers for g in row])
    return statistics.fmean(scores)


def _active_policy_path(project: Project) -> str:
    from .ml.backbones import resolve_backbone

    active = registry.active_version(project_id=project.pk, kind=ModelKind.POLICY)
    if active is not None:
        return str(registry.artifact_location(active))
    return resolve_backbone(backbone_for_loading(project.training_settings["policy"]))


def hidden_win_rate(done: Round, preference) -> float | None:
    """The hidden preference's verdict on the round's head-to-head pairs (stored order: new, previous)."""
    pairs = Comparison.objects.filter(origin__round=done.pk, origin__purpose=HEAD_TO_HEAD).values_list(
        "candidate_ids", "prompt__text"
    )
    pairs = list(pairs)
    if not pairs:
        return None
    answers = candidate_answers([i for ids, _ in pairs for i in ids])
    new = preference.score([p for _, p in pairs], [answers[ids[0]] for ids, _ in pairs])
    old = preference.score([p for _, p in pairs], [answers[ids[1]] for ids, _ in pairs])
    return statistics.fmean(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(new, old, strict=True))


def _emit(row: FlywheelRow, on_row) -> None:
    if on_row is not None:
        on_row(row)


def format_row(row: FlywheelRow) -> str:
    def f(value, spec=".3f"):
        return "—" if value is None else format(value, spec)

    steps = " ".join(f"{name}={seconds:.1f}s" for name, seconds in row.step_seconds.items())
    return (
        f"{row.round:>5} {row.judgments:>9} {f(row.rm_accuracy):>8} {f(row.hidden_reward, '.4f'):>13} "
        f"{f(row.hidden_win_rate):>10} {f(row.kl):>8} {f(row.length, '.1f'):>7}  {steps}"
    )


HEADER = (
    f"{'round':>5} {'judgments':>9} {'rm_acc':>8} {'hidden_reward':>13} {'hidden_win':>10} {'kl':>8} {'length':>7}"
    "  step times"
)
