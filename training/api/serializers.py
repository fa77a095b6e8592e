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
KIND = {"read_only": True, "help_text": "reward | policy"}


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
