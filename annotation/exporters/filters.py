"""Which judgments an export takes: :class:`ExportFilter`, checked from user input, and its query."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_naive, make_aware

from ..models import Comparison, Judgment, Project, Split

GOLD_CHOICES = ("exclude", "include", "only")


class ExportInvalid(ValueError):
    """Bad export arguments; ``errors`` maps field → messages (HTTP 400)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class ExportFilter:
    """The exact selection an export was made from (recorded verbatim in its dataset card).

    - ``date_from`` / ``date_to``: the judgment's time, inclusive start, exclusive end (ISO 8601; a bare date
      is midnight UTC).
    - ``annotators``: usernames; empty = everyone.
    - ``rounds``: ids of the training rounds whose comparisons to take (``Comparison.origin["round"]``); the
      string ``"none"`` stands for comparisons no round produced (imported ones). Empty = all.
    - ``split``: ``train`` or ``eval`` (the prompt's split); None = both.
    - ``min_agreement``: keep comparisons whose judgments (those passing the other filters) agree at least
      this much (``preference.expansion.PairVotes.comparison_agreement``). A comparison judged once has no
      agreement and is left out when this is set.
    - ``gold``: ``exclude`` (default: quality-control items are not data), ``include`` or ``only``.
    """

    date_from: str | None = None
    date_to: str | None = None
    annotators: tuple[str, ...] = ()
    rounds: tuple[str, ...] = ()
    split: str | None = None
    min_agreement: float | None = None
    gold: str = "exclude"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["annotators"], data["rounds"] = list(self.annotators), list(self.rounds)
        return data

    @classmethod
    def parse(cls, raw: dict | None) -> ExportFilter:
        """Check user input (JSON or query parameters) and return the filter; raise :class:`ExportInvalid`."""
        if not isinstance(raw or {}, dict):
            raise ExportInvalid({"filters": ["Must be an object."]})
        raw = dict(raw or {})
        errors: dict[str, list[str]] = {}
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            errors["filters"] = [
                f"Unknown filter(s): {', '.join(unknown)}. Known: {', '.join(cls.__dataclass_fields__)}."
            ]
        for key in ("date_from", "date_to"):
            if raw.get(key) in (None, ""):
                raw[key] = None
            elif _moment(raw[key]) is None:
                errors[key] = [f"Not a date or date-time in ISO 8601: {raw[key]!r}."]
        for key in ("annotators", "rounds"):
            value = raw.get(key) or []
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str | int) for v in value):
                errors[key] = ["Give a list of names (or a comma-separated string)."]
                value = []
            raw[key] = tuple(str(v) for v in value)
        bad_rounds = [v for v in raw["rounds"] if v != "none" and not (v.isascii() and v.isdigit())]
        if bad_rounds:
            errors["rounds"] = [
                f"Round ids are whole numbers (or 'none' for comparisons of no round), not {bad_rounds[0]!r}."
            ]
        if raw.get("split") in ("", None):
            raw["split"] = None
        elif raw["split"] not in Split.values:
            errors["split"] = [f"Must be one of {', '.join(Split.values)}."]
        if raw.get("min_agreement") in ("", None):
            raw["min_agreement"] = None
        else:
            try:
                raw["min_agreement"] = float(raw["min_agreement"])
                if not 0.0 <= raw["min_agreement"] <= 1.0:
                    raise ValueError
            except (TypeError, ValueError):
                errors["min_agreement"] = ["Must be a number from 0 to 1."]
        raw["gold"] = raw.get("gold") or "exclude"
        if raw["gold"] not in GOLD_CHOICES:
            errors["gold"] = [f"Must be one of {', '.join(GOLD_CHOICES)}."]
        if errors:
            raise ExportInvalid(errors)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def judgments(self, project: Project) -> QuerySet:
        """The project's judgments this filter keeps (all but ``min_agreement``, applied per comparison)."""
        return self.own_judgments(project).filter(self._comparison_q("comparison__"))

    def own_judgments(self, project: Project) -> QuerySet:
        """The project's judgments the filters on the judgment itself keep (time, annotators): with
        :meth:`comparisons`, what :meth:`judgments` keeps, in two queries that join nothing to the judgments."""
        qs = Judgment.objects.filter(project=project)
        if self.date_from:
            qs = qs.filter(created_at__gte=_moment(self.date_from))
        if self.date_to:
            qs = qs.filter(created_at__lt=_moment(self.date_to))
        if self.annotators:
            users = get_user_model().objects.filter(username__in=self.annotators).values("pk")
            qs = qs.filter(annotator__in=users)
        return qs

    def comparisons(self) -> QuerySet:
        """The comparisons the filters on the comparison and its prompt keep (rounds, split, gold), of any
        project: :meth:`own_judgments` chooses the project, as :meth:`judgments` does."""
        return Comparison.objects.filter(self._comparison_q(""))

    def _comparison_q(self, path: str) -> Q:
        """The filters on the comparison (reached from the filtered model by ``path``) and its prompt."""
        q = Q()
        if self.rounds:
            wanted = Q()
            for value in self.rounds:
                if value == "none":
                    wanted |= Q(**{f"{path}origin__round__isnull": True})
                else:
                    # Digits (checked in parse); a number too long for a database integer is just text: no match.
                    wanted |= Q(**{f"{path}origin__round": int(value) if len(value) <= 18 else value})
            q &= wanted
        if self.split:
            q &= Q(**{f"{path}prompt__split": self.split})
        if self.gold == "exclude":
            q &= Q(**{f"{path}is_gold": False})
        elif self.gold == "only":
            q &= Q(**{f"{path}is_gold": True})
        return q


def _moment(value) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = parse_datetime(text)
            if moment is None:
                day = parse_date(text) if len(text) == 10 else None
                moment = datetime(day.year, day.month, day.day) if day else None
        except ValueError:  # well formed but impossible, e.g. month 13
            return None
    if moment is not None and is_naive(moment):
        moment = make_aware(moment, timezone=UTC)
    return moment
