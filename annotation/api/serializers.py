"""Input and output shapes of the REST API. Validation of domain rules lives in
the service modules; serializers check types and shapes only."""

import threading

from django.contrib.auth import get_user_model
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from ..judgments import JudgmentInput, SpanInput, span_as_dict
from ..models import ImportJob, JobStatus, Judgment, Membership, Project, Role, SpanMark
from ..quality.gold import GoldSettingsError, parse_gold_settings
from ..schema import SchemaError, parse_schema
from ..work import REMAINING_COUNT_CAP

User = get_user_model()


class LabelingSchemaField(serializers.JSONField):
    """A project's labeling schema; validated by annotation.schema.parse_schema."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        try:
            return parse_schema(data).to_json()
        except SchemaError as exc:
            raise serializers.ValidationError(
                [f"{path}: {' '.join(msgs)}" for path, msgs in exc.errors.items()]
            ) from exc


class GoldSettingsField(serializers.JSONField):
    """A project's gold thresholds; validated by annotation.quality.gold.parse_gold_settings. Each bad setting is an
    error of its own (``gold_settings.warn_below``), so a form can show it beside its input."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        try:
            return parse_gold_settings(data).to_json()
        except GoldSettingsError as exc:
            if set(exc.errors) == {"gold_settings"}:  # not an object at all
                raise serializers.ValidationError([exc.errors["gold_settings"]]) from exc
            raise serializers.ValidationError({key: [msg] for key, msg in exc.errors.items()}) from exc


class ProjectSerializer(serializers.ModelSerializer):
    schema = LabelingSchemaField(required=False, help_text="Labeling schema; see annotation/schema.py.")
    my_role = serializers.SerializerMethodField()
    overlap = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    gold_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    lease_seconds = serializers.IntegerField(min_value=10, max_value=7 * 24 * 3600, required=False)
    position_check_share = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="Share of ordinary judgments whose comparison is served again, later, to the same annotator with "
        "the candidates swapped (position-bias checks; 0: off).",
    )
    position_check_after_min = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, help_text="A check comes at least this many new tasks later."
    )
    position_check_after_max = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, help_text="…and at most this many."
    )
    gold_settings = GoldSettingsField(
        required=False,
        help_text="Gold thresholds: {warn_below, pause_below: accuracy 0..1 or null (off), min_gold: checks before "
        "either applies (10), show_own_accuracy: annotators see their own gold accuracy (false), "
        "promote_min_judgments: unanimous judgments a comparison needs before it can be promoted to gold (3)}. "
        "Accuracy is compared with the upper end of the 95 % interval.",
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "modality",
            "schema",
            "overlap",
            "gold_share",
            "lease_seconds",
            "guidelines",
            "training_settings",
            "gold_settings",
            "position_check_share",
            "position_check_after_min",
            "position_check_after_max",
            "serve_prompt_pairs_together",
            "created_at",
            "updated_at",
            "my_role",
        ]
        # Written only through projects/{id}/training-settings/, which checks them against training/config.py.
        read_only_fields = ["created_at", "updated_at", "training_settings"]

    def validate(self, attrs):
        def current(name):
            return attrs.get(name, getattr(self.instance, name, Project._meta.get_field(name).default))

        low, high = current("position_check_after_min"), current("position_check_after_max")
        if high < low:
            field = "position_check_after_max" if "position_check_after_max" in attrs else "position_check_after_min"
            raise serializers.ValidationError(
                {field: [f"position_check_after_max ({high}) must not be below position_check_after_min ({low})."]}
            )
        return attrs

    def get_my_role(self, project) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(project.pk)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "username", "role", "created_at"]
        read_only_fields = ["user", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_username(self, value):
        user = User.objects.filter(username=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"No active user named {value!r}.")
        return user


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class TaskCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    mime_type = serializers.CharField()
    media_url = serializers.CharField(allow_null=True)


class TaskPromptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    context = serializers.JSONField()


class TaskSerializer(serializers.Serializer):
    """A leased comparison as an annotator sees it: no other people's labels,
    no model scores, no origin, no gold flag (DESIGN §8: no anchoring)."""

    comparison = serializers.IntegerField()
    project = serializers.IntegerField()
    prompt = TaskPromptSerializer()
    candidates = TaskCandidateSerializer(
        many=True, help_text="Left to right, in the order to show them (the server shuffles; do not reorder)."
    )
    lease_expires_at = serializers.DateTimeField()
    resumed = serializers.BooleanField(help_text="True when this is a lease you already held.")


class SpanInputSerializer(serializers.Serializer):
    candidate = serializers.IntegerField()
    category = serializers.CharField(max_length=64)
    start = serializers.FloatField(required=False, allow_null=True, default=None)
    end = serializers.FloatField(required=False, allow_null=True, default=None)
    box = serializers.ListField(
        child=serializers.FloatField(), min_length=4, max_length=4, required=False, allow_null=True, default=None
    )
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class FieldsBuiltOncePerThread:
    """A serializer whose bound fields are built once per thread and reused by its later instances.

    DRF deep-copies a serializer's declared fields for every instance and binds the copies to it. For
    the submit body, on the labelling hot path, that was ~1 ms of CPU per request (an eighth of a label's
    app CPU, bench/README.md): the copying itself, and the garbage collector's walks over the copies,
    which point back at their parent and so are freed only by a collection.

    Reusing the fields is safe only for a serializer used for input validation whose fields keep no
    per-request state: no field reads the context or the instance, and it is never partial, so what a
    field reaches through ``parent``/``root`` is the same on every instance. Threads keep their own
    copies (``bind`` and nested validation write to the fields).
    """

    _per_thread = threading.local()

    @property
    def fields(self) -> BindingDict:
        built = self._per_thread.__dict__
        fields = built.get(type(self))
        if fields is None:
            # What DRF's ``Serializer.fields`` does, once per thread and class.
            fields = BindingDict(self)
            for name, field in self.get_fields().items():
                fields[name] = field
            built[type(self)] = fields
        return fields


class JudgmentCreateSerializer(FieldsBuiltOncePerThread, serializers.Serializer):
    """Exactly one of ``winner``, ``tie`` or ``ranking`` (best first)."""

    winner = serializers.IntegerField(required=False, allow_null=True, default=None)
    tie = serializers.BooleanField(required=False, default=False)
    ranking = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, default=None, max_length=64
    )
    # How much better the winner is (the schema's 0..max); the winner gives the direction.
    strength = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=100)
    ratings = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField(min_value=-1000, max_value=1000)),
        required=False,
        default=dict,
        help_text='Candidate id → {criterion key → value}, e.g. {"17": {"helpful": 4}}.',
    )
    spans = SpanInputSerializer(many=True, required=False, default=list, max_length=500)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    shown_order = serializers.ListField(child=serializers.IntegerField(), required=False, default=list, max_length=64)
    time_spent_ms = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=86_400_000
    )

    def to_answer(self) -> JudgmentInput:
        data = dict(self.validated_data)
        data["spans"] = [SpanInput(**span) for span in data["spans"]]
        return JudgmentInput(**data)


class SpanMarkSerializer(serializers.ModelSerializer):
    class Meta:
        model = SpanMark
        fields = ["candidate", "start", "end", "box", "category", "note"]


class JudgmentSerializer(serializers.ModelSerializer):
    annotator_username = serializers.CharField(source="annotator.username", read_only=True)
    spans = SpanMarkSerializer(many=True, read_only=True)

    class Meta:
        model = Judgment
        fields = [
            "id",
            "project",
            "comparison",
            "annotator",
            "annotator_username",
            "winner",
            "tie",
            "ranking",
            "strength",
            "ratings",
            "spans",
            "rationale",
            "shown_order",
            "time_spent_ms",
            "lease_lost",
            "created_at",
        ]


_DATETIME = serializers.DateTimeField()


def judgment_data(judgment: Judgment) -> dict:
    """What :class:`JudgmentSerializer` outputs, built directly: the submit response is
    on the labelling hot path, where building serializer fields per request cost
    more than the database work. ``test_judgment_data_matches_the_serializer``
    keeps the two in step. ``judgment.annotator`` and its spans must be loaded."""
    return {
        "id": judgment.pk,
        "project": judgment.project_id,
        "comparison": judgment.comparison_id,
        "annotator": judgment.annotator_id,
        "annotator_username": judgment.annotator.username,
        "winner": judgment.winner_id,
        "tie": judgment.tie,
        "ranking": judgment.ranking,
        "strength": judgment.strength,
        "ratings": judgment.ratings,
        "spans": [span_as_dict(span) for span in judgment.spans.all()],
        "rationale": judgment.rationale,
        "shown_order": judgment.shown_order,
        "time_spent_ms": judgment.time_spent_ms,
        "lease_lost": judgment.lease_lost,
        "created_at": _DATETIME.to_representation(judgment.created_at),
    }


class ImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="The rows (.jsonl, .csv, .parquet); or, for media candidates (kind bundle or candidates), a .zip "
        "holding one such file at its top level (the manifest) and the files its candidates name with "
        '"media": "img/cat-1.png".'
    )
    kind = serializers.ChoiceField(choices=["prompts", "candidates", "comparisons", "bundle"])
    file_format = serializers.ChoiceField(
        choices=["jsonl", "csv", "parquet", "zip"],
        required=False,
        help_text="Taken from the file name when left out.",
    )
    media = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        help_text="Media files sent beside the rows instead of a zip (kind bundle or candidates): `file` is then "
        'the manifest, whose candidates name these files by their file name ("media": "cat-1.png").',
    )


class ImportJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = [
            "id",
            "project",
            "kind",
            "file_format",
            "original_name",
            "status",
            "phase",
            "rows_total",
            "rows_done",
            "errors",
            "result",
            "message",
            "attempts",
            "cancel_requested",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]


class ComparisonsBuildSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["pairs", "groups"])
    priority = serializers.IntegerField(required=False, default=0, min_value=-1_000_000, max_value=1_000_000)


class ComparisonsBuildResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()


class ComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    prompt = serializers.IntegerField(source="prompt_id")
    candidate_ids = serializers.ListField(child=serializers.IntegerField())
    status = serializers.CharField()
    priority = serializers.IntegerField()
    wanted = serializers.IntegerField()
    judged = serializers.IntegerField()
    leased = serializers.IntegerField()
    is_gold = serializers.BooleanField()
    origin = serializers.JSONField()
    created_at = serializers.DateTimeField()


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_superuser = serializers.BooleanField()
    can_create_projects = serializers.BooleanField()


class OwnGoldSerializer(serializers.Serializer):
    judged = serializers.IntegerField()
    accuracy = serializers.FloatField()
    low = serializers.FloatField(help_text="95 % Wilson interval, lower end.")
    high = serializers.FloatField()


class WorkRowSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField()
    modality = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    remaining = serializers.IntegerField(
        help_text=f"Comparisons still open for you (your live lease included), counted up to {REMAINING_COUNT_CAP}."
    )
    remaining_capped = serializers.BooleanField(help_text="True when there are more than `remaining` left for you.")
    done_today = serializers.IntegerField(help_text="Your judgments in this project since midnight UTC.")
    gold_warning = serializers.CharField(
        allow_null=True, help_text="Why your gold accuracy is below the project's warning threshold, else null."
    )
    paused = serializers.CharField(
        allow_null=True, help_text="Why you are paused in this project (next answers 403 until resumed), else null."
    )
    gold = OwnGoldSerializer(
        allow_null=True, help_text="Your own gold accuracy, only where the project shows it to annotators."
    )


class StatsSerializer(serializers.Serializer):
    comparisons = serializers.DictField(child=serializers.IntegerField())
    queue = serializers.DictField(child=serializers.IntegerField())
    judgments = serializers.JSONField()
    prompts = serializers.IntegerField()
    candidates = serializers.IntegerField()


# --- Export ------------------------------------------------------------------------------------------------


class ExportFiltersSerializer(serializers.Serializer):
    """Which judgments to export (annotation.exporters.ExportFilter explains each)."""

    date_from = serializers.CharField(required=False, allow_null=True, help_text="ISO 8601, inclusive.")
    date_to = serializers.CharField(required=False, allow_null=True, help_text="ISO 8601, exclusive.")
    annotators = serializers.ListField(child=serializers.CharField(), required=False, help_text="Usernames.")
    rounds = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Round ids; 'none' = comparisons no round made."
    )
    split = serializers.ChoiceField(choices=["train", "eval"], required=False, allow_null=True)
    min_agreement = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    gold = serializers.ChoiceField(choices=["exclude", "include", "only"], required=False)


class ExportOptionsSerializer(serializers.Serializer):
    form = serializers.ChoiceField(choices=["standard", "conversational"], required=False)
    ties = serializers.ChoiceField(choices=["drop", "soft"], required=False)
    margin_scale = serializers.FloatField(required=False)
    spreadsheet_safe = serializers.BooleanField(
        required=False,
        help_text="csv only: text cells starting with = + - @ TAB or CR get a leading ' so spreadsheets run no "
        "formula (the label importer takes it off again). Off unless asked for; the dashboard asks for it.",
    )


class ExportCreateSerializer(serializers.Serializer):
    shape = serializers.ChoiceField(choices=["pairs", "rankings", "judgments", "consensus"])
    file_format = serializers.ChoiceField(choices=["jsonl", "csv", "parquet", "hf"])
    filters = ExportFiltersSerializer(required=False)
    options = ExportOptionsSerializer(required=False)
    media = serializers.ChoiceField(choices=["urls", "pack"], required=False, default="urls")


class ExportJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    shape = serializers.CharField()
    file_format = serializers.CharField()
    request = serializers.JSONField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    rows_total = serializers.IntegerField(allow_null=True, help_text="Judgments selected.")
    rows_done = serializers.IntegerField(help_text="Judgments written so far.")
    progress = serializers.SerializerMethodField()
    size_bytes = serializers.IntegerField(allow_null=True)
    numbers = serializers.JSONField(help_text="The dataset card's numbers (when done).")
    message = serializers.CharField()
    download_url = serializers.SerializerMethodField(help_text="The zip archive, once the export succeeded.")
    attempts = serializers.IntegerField(help_text="Times a worker claimed it (a dead worker's job is taken over).")
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True, help_text="Last sign of life of its worker.")
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_progress(self, job) -> float:
        if job.status == "succeeded":
            return 1.0
        return min(job.rows_done / job.rows_total, 1.0) if job.rows_total else 0.0

    def get_download_url(self, job) -> str | None:
        if job.status != "succeeded" or not job.file:
            return None
        from django.urls import reverse

        path = reverse("export-download", kwargs={"pk": job.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class LabelImportSerializer(serializers.Serializer):
    file = serializers.FileField()
    kind = serializers.ChoiceField(choices=["pairs", "judgments"])
    file_format = serializers.ChoiceField(
        choices=["jsonl", "csv", "parquet"], required=False, help_text="Taken from the file name when left out."
    )
    annotator = serializers.CharField(
        required=False, help_text="pairs without an annotator column: credit this user (default: you)."
    )


class LabelImportResultSerializer(serializers.Serializer):
    prompts = serializers.IntegerField()
    candidates = serializers.IntegerField()
    comparisons = serializers.IntegerField()
    judgments = serializers.IntegerField()
    unchanged = serializers.IntegerField()
