"""The labeling schema: what an annotator records for a project's comparisons.

Stored as JSON on ``Project.schema`` and parsed into :class:`LabelingSchema`
here, the one place that knows its rules. Example::

    {
      "arity": 2,                       # candidates per comparison (2 = pairwise, K = ranking)
      "allow_tie": true,
      "strength": {"min": 0, "max": 3},   # or null: no preference strength
      "criteria": [{"key": "helpful", "label": "Helpfulness", "min": 1, "max": 5}],
      "span_categories": [{"key": "incorrect", "label": "Incorrect", "color": "#d62728"}],
      "rationale": "optional"           # off | optional | required
    }

Strength is a magnitude toward the chosen candidate: how much better the winner
is, ``min`` (usually 0, "about the same") to ``max`` ("much better"). The winner
gives the direction, so the scale has no sign (HelpSteer2-Preference's −3..3
is this scale's 0..3 with the side folded into the choice). Only a pairwise
judgment with a winner carries one (not a tie, not a ranking). Training and the
``pairs`` export both read it as the Bradley–Terry margin, strength × margin scale.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

MAX_ARITY = 16
RATIONALE_MODES = ("off", "optional", "required")
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class SchemaError(ValueError):
    """A labeling schema that does not validate; ``errors`` maps a JSON path to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class Criterion:
    key: str
    label: str
    min: int = 1
    max: int = 5


@dataclass(frozen=True)
class SpanCategory:
    key: str
    label: str
    color: str = "#d62728"


@dataclass(frozen=True)
class StrengthScale:
    min: int
    max: int


@dataclass(frozen=True)
class LabelingSchema:
    arity: int = 2
    allow_tie: bool = True
    strength: StrengthScale | None = None
    criteria: tuple[Criterion, ...] = field(default_factory=tuple)
    span_categories: tuple[SpanCategory, ...] = field(default_factory=tuple)
    rationale: str = "optional"

    def to_json(self) -> dict:
        data = asdict(self)
        data["criteria"] = list(data["criteria"])
        data["span_categories"] = list(data["span_categories"])
        return data

    @property
    def criterion_by_key(self) -> dict[str, Criterion]:
        return {c.key: c for c in self.criteria}

    @property
    def span_category_keys(self) -> set[str]:
        return {c.key for c in self.span_categories}


def parse_schema(data: object) -> LabelingSchema:
    """Validate raw JSON into a :class:`LabelingSchema`, or raise :class:`SchemaError`
    naming every wrong field. Missing keys take the defaults above."""
    errors: dict[str, list[str]] = {}

    def err(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SchemaError({"schema": ["Must be a JSON object."]})
    known = {"arity", "allow_tie", "strength", "criteria", "span_categories", "rationale"}
    for key in sorted(set(data) - known):
        err(f"schema.{key}", f"Unknown key; expected one of {', '.join(sorted(known))}.")

    arity = data.get("arity", 2)
    if not _is_int(arity) or not 2 <= arity <= MAX_ARITY:
        err("schema.arity", f"Must be an integer from 2 to {MAX_ARITY}.")
        arity = 2

    allow_tie = data.get("allow_tie", True)
    if not isinstance(allow_tie, bool):
        err("schema.allow_tie", "Must be true or false.")

    strength = None
    raw_strength = data.get("strength")
    if raw_strength is not None:
        if (
            not isinstance(raw_strength, dict)
            or not _is_int(raw_strength.get("min"))
            or not _is_int(raw_strength.get("max"))
        ):
            err("schema.strength", 'Must be null or {"min": integer, "max": integer}.')
        elif raw_strength["min"] < 0:
            err(
                "schema.strength",
                "Strength is how much better the chosen candidate is, so min must be 0 or more "
                '(e.g. {"min": 0, "max": 3}); the choice itself gives the direction.',
            )
        elif not raw_strength["min"] < raw_strength["max"] or raw_strength["max"] > 100:
            err("schema.strength", "min must be below max, both within 0..100.")
        else:
            strength = StrengthScale(min=raw_strength["min"], max=raw_strength["max"])

    criteria = []
    raw_criteria = data.get("criteria", [])
    if not isinstance(raw_criteria, list):
        err("schema.criteria", "Must be a list.")
        raw_criteria = []
    for i, raw in enumerate(raw_criteria):
        path = f"schema.criteria[{i}]"
        if not isinstance(raw, dict):
            err(path, "Must be an object with key, label, min and max.")
            continue
        key, label = raw.get("key"), raw.get("label", raw.get("key"))
        lo, hi = raw.get("min", 1), raw.get("max", 5)
        if not isinstance(key, str) or not _KEY.match(key):
            err(f"{path}.key", "Must be lower-case letters, digits, '_' or '-', starting with a letter.")
            continue
        if not isinstance(label, str) or not label.strip():
            err(f"{path}.label", "Must be a non-empty string.")
            continue
        if not _is_int(lo) or not _is_int(hi) or not lo < hi:
            err(path, "min and max must be integers with min < max.")
            continue
        criteria.append(Criterion(key=key, label=label, min=lo, max=hi))
    _check_unique([c.key for c in criteria], "schema.criteria", err)

    categories = []
    raw_categories = data.get("span_categories", [])
    if not isinstance(raw_categories, list):
        err("schema.span_categories", "Must be a list.")
        raw_categories = []
    for i, raw in enumerate(raw_categories):
        path = f"schema.span_categories[{i}]"
        if not isinstance(raw, dict):
            err(path, "Must be an object with key, label and color.")
            continue
        key, label, color = raw.get("key"), raw.get("label", raw.get("key")), raw.get("color", "#d62728")
        if not isinstance(key, str) or not _KEY.match(key):
            err(f"{path}.key", "Must be lower-case letters, digits, '_' or '-', starting with a letter.")
            continue
        if not isinstance(label, str) or not label.strip():
            err(f"{path}.label", "Must be a non-empty string.")
            continue
        if not isinstance(color, str) or not _COLOR.match(color):
            err(f"{path}.color", "Must be a colour like #1f77b4.")
            continue
        categories.append(SpanCategory(key=key, label=label, color=color))
    _check_unique([c.key for c in categories], "schema.span_categories", err)

    rationale = data.get("rationale", "optional")
    if rationale not in RATIONALE_MODES:
        err("schema.rationale", f"Must be one of {', '.join(RATIONALE_MODES)}.")

    if errors:
        raise SchemaError(errors)
    return LabelingSchema(
        arity=arity,
        allow_tie=allow_tie,
        strength=strength,
        criteria=tuple(criteria),
        span_categories=tuple(categories),
        rationale=rationale,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_unique(keys: list[str], path: str, err) -> None:
    seen = set()
    for key in keys:
        if key in seen:
            err(path, f"Key {key!r} appears twice.")
        seen.add(key)
