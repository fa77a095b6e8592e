"""Label-quality API (issue 18): researchers only. Annotators never see others' labels, gold answers or anyone's
flags, so every view here needs the researcher role (annotation.access) — an annotator gets 403, a non-member 404.
"""

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import project_for
from ..models import Role
from ..quality.exclusions import ExclusionError, annotator_exclude, annotator_restore
from ..quality.gold import PauseError, annotator_resume
from ..quality.selectors import quality_table

ERROR = OpenApiResponse(description='Error: {"message": "...", "errors": {"field": ["..."]}}')


class FlagSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class AnnotatorQualitySerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    judgments = serializers.IntegerField()
    median_time_ms = serializers.IntegerField(allow_null=True)
    gold_judged = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_accuracy_low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval, lower end.")
    gold_accuracy_high = serializers.FloatField(allow_null=True)
    reliability = serializers.FloatField(allow_null=True, help_text="Estimated accuracy (one-coin Dawid–Skene).")
    weight = serializers.FloatField(allow_null=True, help_text="Training weight from the reliability.")
    agreement_with_consensus = serializers.FloatField(allow_null=True)
    agreement_with_others = serializers.FloatField(allow_null=True)
    left_share = serializers.FloatField(allow_null=True)
    longer_share = serializers.FloatField(allow_null=True)
    position_checks = serializers.IntegerField(
        help_text="Position-bias checks answered (a comparison served again, swapped)."
    )
    position_consistency = serializers.FloatField(
        allow_null=True, help_text="Share of position checks answered as the first time; null without checks."
    )
    position_consistency_low = serializers.FloatField(allow_null=True, help_text="95 % Wilson interval, lower end.")
    position_consistency_high = serializers.FloatField(allow_null=True)
    flags = FlagSerializer(many=True)
    excluded = serializers.BooleanField()
    excluded_at = serializers.DateTimeField(allow_null=True)
    excluded_by = serializers.CharField(allow_null=True)
    exclusion_reason = serializers.CharField(allow_blank=True)
    paused = serializers.BooleanField(help_text="Below the project's gold pause threshold: next serves them nothing.")
    paused_at = serializers.DateTimeField(allow_null=True)
    pause_reason = serializers.CharField(allow_blank=True)


class QualitySerializer(serializers.Serializer):
    computed_at = serializers.DateTimeField(allow_null=True)
    judgment_count = serializers.IntegerField()
    new_judgments = serializers.IntegerField(help_text="Judgments since the figures were computed.")
    statistics = serializers.JSONField(help_text="Agreement statistics: choice, strength, criteria, spans, by_round.")
    annotators = AnnotatorQualitySerializer(many=True)


class ExclusionRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class QualityView(APIView):
    @extend_schema(responses={200: QualitySerializer, 403: ERROR, 404: ERROR})
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        return Response(QualitySerializer(quality_table(project_id=project.pk)).data)


class QualityRecomputeView(APIView):
    @extend_schema(request=None, responses={202: None, 403: ERROR, 404: ERROR})
    def post(self, request, pk: int):
        from ..tasks import quality_refresh_task

        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        transaction.on_commit(lambda: quality_refresh_task.delay(project.pk))
        return Response(status=status.HTTP_202_ACCEPTED)


class ExclusionView(APIView):
    """Exclude an annotator's labels from training (POST), or restore them (DELETE); both are in the audit log."""

    @extend_schema(request=ExclusionRequestSerializer, responses={200: QualitySerializer, 400: ERROR, 403: ERROR})
    def post(self, request, pk: int, user_id: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        body = ExclusionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            annotator_exclude(
                project=project, annotator_id=user_id, actor=request.user, reason=body.validated_data["reason"]
            )
        except ExclusionError as exc:
            raise ValidationError({"user_id": [str(exc)]}) from None
        return Response(QualitySerializer(quality_table(project_id=project.pk)).data)

    @extend_schema(responses={200: QualitySerializer, 400: ERROR, 403: ERROR})
    def delete(self, request, pk: int, user_id: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        try:
            annotator_restore(project=project, annotator_id=user_id, actor=request.user)
        except ExclusionError as exc:
            raise ValidationError({"user_id": [str(exc)]}) from None
        return Response(QualitySerializer(quality_table(project_id=project.pk)).data)


class PauseView(APIView):
    """Resume an annotator paused for low gold accuracy (DELETE); recorded in the audit log."""

    @extend_schema(responses={200: QualitySerializer, 400: ERROR, 403: ERROR})
    def delete(self, request, pk: int, user_id: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        try:
            annotator_resume(project=project, annotator_id=user_id, actor=request.user)
        except PauseError as exc:
            raise ValidationError({"user_id": [str(exc)]}) from None
        return Response(QualitySerializer(quality_table(project_id=project.pk)).data)
