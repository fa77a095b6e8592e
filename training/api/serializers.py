"""Input and output shapes of the training API (rounds and model versions)."""

from rest_framework import serializers

from ..models import ModelVersion, Round


class RoundStartSerializer(serializers.Serializer):
    config = serializers.DictField(
        required=False,
        default=dict,
        help_text="Overrides of the project's training settings for this round only, e.g. "
        '{"epochs": 1, "ensemble_size": 3}. Keys are the fields of training.config.RoundConfig.',
    )


# A plain string in the schema: a "kind" enum would collide with the import job's "kind" enum component.
KIND = {"read_only": True, "help_text": "reward | span | policy"}


class RoundSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(**KIND)
    triggered_by = serializers.CharField(source="triggered_by.username", default=None, read_only=True)
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = Round
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "step",
            "progress",
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
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_model_version(self, obj) -> int | None:
        return obj.model_version_id


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
