"""Input and output shapes of the training API (rounds and model versions)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import ModelVersion, Round
from ..win_rates import human_win_rates


class RoundStartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["reward", "policy"],
        required=False,
        help_text="reward: train the reward model. policy: the whole loop (reward model, generate, score, optimise "
        "the policy, evaluate, push new comparisons). Default: policy when the training settings name a policy.",
    )
    config = serializers.DictField(
        required=False,
        default=dict,
        help_text="Overrides of the project's training settings for this round only, e.g. "
        '{"epochs": 1, "ensemble_size": 3}. Keys are the fields of training.config.RoundConfig.',
    )


class TrainingSettingFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    # A plain string in the schema, as KIND below: a "type" enum would take the generic name TypeEnum.
    type = serializers.CharField(help_text="boolean | choice | integer | number | string")
    default = serializers.JSONField(help_text="What a round uses when the project does not set it.")
    choices = serializers.ListField(child=serializers.CharField(), help_text="The allowed values of a choice.")
    nullable = serializers.BooleanField()
    help = serializers.CharField()


class TrainingSettingsSerializer(serializers.Serializer):
    settings = serializers.DictField(
        help_text="The project's training settings: keys are the fields of training.config.RoundConfig; a key "
        "left out takes its default."
    )
    fields = TrainingSettingFieldSerializer(many=True, read_only=True, help_text="Every setting, for an editor.")


# A plain string in the schema: a "kind" enum would collide with the import job's "kind" enum component.
KIND = {"read_only": True, "help_text": "reward | span | policy"}


class RoundStepSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="reward | generate | score | optimise | evaluate | push | register")
    status = serializers.CharField(help_text="pending | running | succeeded | failed | cancelled")
    started_at = serializers.DateTimeField(required=False)
    seconds = serializers.FloatField(required=False, help_text="How long it ran (when it ended).")


class WinRateSerializer(serializers.Serializer):
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    n = serializers.IntegerField()
    rate = serializers.FloatField(help_text="(wins + ties / 2) / n")
    low = serializers.FloatField(help_text="Wilson 95 % interval")
    high = serializers.FloatField()


class RoundSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(**KIND)
    triggered_by = serializers.CharField(source="triggered_by.username", default=None, read_only=True, allow_null=True)
    model_version = serializers.SerializerMethodField()
    steps = RoundStepSerializer(many=True, read_only=True)
    human_win_rate = serializers.SerializerMethodField(
        help_text="Policy rounds: how often people preferred the new policy's answer to the previous one's on the "
        "pushed head-to-head comparisons; null until someone judged one."
    )

    class Meta:
        model = Round
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "step",
            "progress",
            "steps",
            "config",
            "metrics",
            "log_tail",
            "error",
            "trigger",
            "triggered_by",
            "cancel_requested",
            "attempts",
            "judgment_max_id",
            "model_version",
            "human_win_rate",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_model_version(self, obj) -> int | None:
        return obj.model_version_id

    @extend_schema_field(WinRateSerializer(allow_null=True))
    def get_human_win_rate(self, obj) -> dict | None:
        if obj.kind != "policy":
            return None
        # A list view computes every round of the page in one query and passes them in the context.
        rates = self.context.get("win_rates")
        if rates is None:
            rates = human_win_rates(round_ids=[obj.pk])
        return rates.get(obj.pk)


class ModelVersionSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(**KIND)
    parent = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project",
            "kind",
            "version",
            "status",
            "is_active",
            "base_model",
            "artifact_path",
            "parent",
            "metrics",
            "config",
            "judgment_snapshot_id",
            "judgment_count",
            "judgment_max_id",
            "activated_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_parent(self, obj) -> int | None:
        return obj.parent_id


class SpanScoreRequestSerializer(serializers.Serializer):
    candidate = serializers.IntegerField(
        required=False, min_value=1, help_text="A text candidate of this project (its prompt is used as context)."
    )
    text = serializers.CharField(
        required=False, trim_whitespace=False, help_text="Any text to score, instead of a candidate."
    )
    prompt = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False, help_text="Context for a posted text."
    )
    model_version = serializers.IntegerField(
        required=False, min_value=1, help_text="A span version of this project; the active one by default."
    )

    def validate(self, attrs):
        if ("candidate" in attrs) == ("text" in attrs):
            raise serializers.ValidationError({"candidate": ["Give exactly one of candidate or text."]})
        if "candidate" in attrs and attrs.get("prompt"):
            raise serializers.ValidationError({"prompt": ["A candidate's prompt is its own; omit prompt."]})
        return attrs


class SpanSegmentSerializer(serializers.Serializer):
    start = serializers.IntegerField(help_text="Unicode code-point offset of the segment's first character.")
    end = serializers.IntegerField(help_text="Code-point offset just past its last character (end exclusive).")
    text = serializers.CharField(help_text="text[start:end] — untrusted model input; render as text, not HTML.")
    penalties = serializers.DictField(
        child=serializers.FloatField(), help_text="Per span category: P(an error of it in this segment)."
    )
    reward = serializers.FloatField(help_text="−Σ_c weight_c · penalty_c.")


class SpanScoresSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    version = serializers.IntegerField()
    categories = serializers.ListField(child=serializers.CharField())
    category_weights = serializers.DictField(child=serializers.FloatField())
    text_length = serializers.IntegerField(help_text="In code points.")
    segments = SpanSegmentSerializer(many=True)
    total = serializers.FloatField(help_text="Sum of the segment rewards.")


class PolicySampleRequestSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=20_000, help_text="A user message for the policy to answer.")
    max_new_tokens = serializers.IntegerField(min_value=1, max_value=1024, default=128)
    temperature = serializers.FloatField(min_value=0.01, max_value=10.0, default=0.8)
    top_p = serializers.FloatField(min_value=0.01, max_value=1.0, default=0.95)
    seed = serializers.IntegerField(
        min_value=0,
        max_value=2**63 - 1,
        required=False,
        help_text="Reproduces an answer (a generated candidate's origin.seed reproduces it); random when absent.",
    )


class PolicySampleSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    version = serializers.IntegerField()
    text = serializers.CharField()
    seed = serializers.IntegerField()
    tokens = serializers.IntegerField()
    finish_reason = serializers.CharField(help_text="eos | length")
