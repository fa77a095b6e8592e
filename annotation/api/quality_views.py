"""Label-quality API (issue 18): researchers only. Annotators never see others' labels, gold answers or anyone's
flags, so every view here needs the researcher role (annotation.access) — an annotator gets 403, a non-member 404.
"""

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import project_for
from ..models import Role
from ..quality.exclusions import ExclusionError, annotator_exclude, annotator_restore
from ..quality.gold import PauseError, annotator_resume
from ..quality.promotion import (
    ComparisonNotFound,
    PromotionError,
    comparison_demote,
    comparison_promote,
    gold_promotion_overview,
)
from ..quality.selectors import agreement_detail, quality_table
from ..tasks import quality_refresh_task

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


class GoldItemSerializer(serializers.Serializer):
    comparison_id = serializers.IntegerField()
    external_id = serializers.CharField()
    prompt = serializers.CharField(help_text="The prompt's first 200 characters (imported text: show as text).")
    answer = serializers.JSONField(help_text='The gold answer: {"winner": id} | {"ranking": [ids]} | {"tie": true}.')
    answer_text = serializers.CharField(allow_blank=True, help_text="The answer's candidate text(s), shortened.")
    judgments = serializers.IntegerField()
    confidence = serializers.FloatField(allow_null=True, help_text="The reliability model's consensus confidence.")


class PromotedGoldSerializer(GoldItemSerializer):
    judgments_before = serializers.IntegerField(
        help_text="Judgments given before the promotion: ordinary labels, not gold checks."
    )
    promoted_at = serializers.DateTimeField(allow_null=True)
    promoted_by = serializers.CharField(allow_null=True)


class GoldPromotionSerializer(serializers.Serializer):
    min_judgments = serializers.IntegerField(help_text="The project's promote_min_judgments.")
    ready = GoldItemSerializer(many=True, help_text="Unanimous, with at least min_judgments judgments, not gold.")
    promoted = PromotedGoldSerializer(many=True, help_text="Promoted from the dashboard, newest first.")


class GoldPromotionView(APIView):
    """Comparisons ready to become gold, and the promoted ones."""

    @extend_schema(responses={200: GoldPromotionSerializer, 403: ERROR, 404: ERROR})
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        return Response(GoldPromotionSerializer(gold_promotion_overview(project=project)).data)


class GoldComparisonView(APIView):
    """Promote a unanimous comparison to gold (POST), or demote a promoted one (DELETE); both in the audit log."""

    def _change(self, request, pk: int, comparison_id: int, change):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        try:
            change(project=project, comparison_id=comparison_id, actor=request.user)
        except ComparisonNotFound as exc:
            raise NotFound(str(exc)) from None
        except PromotionError as exc:
            raise ValidationError({"comparison_id": [str(exc)]}) from None
        return Response(GoldPromotionSerializer(gold_promotion_overview(project=project)).data)

    @extend_schema(request=None, responses={200: GoldPromotionSerializer, 400: ERROR, 403: ERROR, 404: ERROR})
    def post(self, request, pk: int, comparison_id: int):
        return self._change(request, pk, comparison_id, comparison_promote)

    @extend_schema(responses={200: GoldPromotionSerializer, 400: ERROR, 403: ERROR, 404: ERROR})
    def delete(self, request, pk: int, comparison_id: int):
        return self._change(request, pk, comparison_id, comparison_demote)


class WeekAgreementSerializer(serializers.Serializer):
    week = serializers.DateField(help_text="The week's Monday (UTC).")
    judgments = serializers.IntegerField(help_text="Judgments of the comparisons counted in this week.")
    comparisons = serializers.IntegerField(help_text="Comparisons whose latest judgment falls in this week.")
    pairable_comparisons = serializers.IntegerField(help_text="Of those, judged more than once.")
    krippendorff_alpha = serializers.FloatField(allow_null=True, help_text="Null below min_week_comparisons.")


class AnnotatorNameSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()


class AnnotatorPairSerializer(serializers.Serializer):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    kappa = serializers.FloatField(allow_null=True, help_text="Cohen's kappa; null below min_shared.")
    shared = serializers.IntegerField(help_text="Comparisons both judged.")
    agreement = serializers.FloatField(allow_null=True, help_text="Share of those where they gave the same answer.")


class AgreementSerializer(serializers.Serializer):
    computed_at = serializers.DateTimeField(allow_null=True)
    min_shared = serializers.IntegerField()
    min_week_comparisons = serializers.IntegerField()
    over_time = WeekAgreementSerializer(many=True)
    annotators = AnnotatorNameSerializer(many=True)
    pairs = AnnotatorPairSerializer(many=True, help_text="Every two annotators who share a comparison.")


class AgreementView(APIView):
    """Agreement over time (Krippendorff's alpha of choices per week) and between annotators (Cohen's kappa)."""

    @extend_schema(responses={200: AgreementSerializer, 403: ERROR, 404: ERROR})
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        return Response(AgreementSerializer(agreement_detail(project_id=project.pk)).data)
