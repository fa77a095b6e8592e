"""Training API: rounds (start, status with progress, cancel) and the model registry (list, activate).

Roles (annotation.access): researchers and admins see rounds and versions and may score texts with a span
model; only admins start or cancel rounds and change the active version. Annotators get 403 (they must not see
model scores, DESIGN §8); non-members 404.
"""

import secrets

from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import project_for
from annotation.models import Role

from .. import policy_serving, registry, rounds, span_scoring
from ..config import ConfigInvalid, round_config_fields, training_settings_replace
from ..models import ModelKind, ModelVersion, Round, RoundTrigger
from ..win_rates import human_win_rates
from . import serializers as s

ERROR = OpenApiResponse(description='Error: {"message": "...", "errors": {"field": ["..."]}}')


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


def _round_for(request, pk: int, at_least: Role) -> Round:
    not_found = NotFound("No round with this id in a project you are a member of.")
    found = Round.objects.select_related("triggered_by").filter(pk=pk).first()
    if found is None:
        raise not_found
    try:
        project_for(user=request.user, project_id=found.project_id, at_least=at_least)
    except Http404:
        raise not_found from None  # the same answer as for a missing id: ids are not enumerable
    return found


def _version_for(request, pk: int, at_least: Role) -> ModelVersion:
    not_found = NotFound("No model version with this id in a project you are a member of.")
    found = ModelVersion.objects.select_related("project").filter(pk=pk).first()
    if found is None:
        raise not_found
    try:
        project_for(user=request.user, project_id=found.project_id, at_least=at_least)
    except Http404:
        raise not_found from None
    return found


class RoundListView(generics.ListAPIView):
    """A project's rounds, newest first. POST starts a round (admins): a reward round, or with a policy in the
    training settings the whole loop."""

    serializer_class = s.RoundSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        project, _ = project_for(user=self.request.user, project_id=self.kwargs["pk"], at_least=Role.RESEARCHER)
        return Round.objects.filter(project=project).select_related("triggered_by")

    def get_serializer(self, *args, **kwargs):
        page = args[0] if args else None
        if kwargs.get("many") and page is not None:
            ids = [r.pk for r in page if r.kind == ModelKind.POLICY]
            kwargs.setdefault("context", self.get_serializer_context())["win_rates"] = human_win_rates(round_ids=ids)
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        request=s.RoundStartSerializer,
        responses={201: s.RoundSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.ADMIN)
        body = s.RoundStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            started = rounds.round_start(
                project=project,
                triggered_by=request.user,
                trigger=RoundTrigger.MANUAL,
                kind=body.validated_data.get("kind"),
                overrides=body.validated_data["config"],
            )
        except ConfigInvalid as exc:
            raise ValidationError({f"config.{key}": messages for key, messages in exc.errors.items()}) from exc
        except rounds.RoundError as exc:
            raise Conflict(exc.message) from exc
        return Response(s.RoundSerializer(started).data, status=status.HTTP_201_CREATED)


class TrainingSettingsView(APIView):
    """The project's training settings with a description of every setting (researchers and admins); PUT replaces
    them (admins), validated against training.config.RoundConfig: every bad key is named, and nothing is saved."""

    @extend_schema(responses={200: s.TrainingSettingsSerializer, 403: ERROR, 404: ERROR})
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        return Response(_training_settings(project.training_settings))

    @extend_schema(
        request=s.TrainingSettingsSerializer,
        responses={200: s.TrainingSettingsSerializer, 400: ERROR, 403: ERROR, 404: ERROR},
    )
    def put(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.ADMIN)
        body = s.TrainingSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            stored = training_settings_replace(project=project, settings=body.validated_data["settings"])
        except ConfigInvalid as exc:
            raise ValidationError({f"settings.{key}": messages for key, messages in exc.errors.items()}) from exc
        return Response(_training_settings(stored))


def _training_settings(stored: dict) -> dict:
    return {"settings": stored, "fields": list(round_config_fields())}


class RoundDetailView(APIView):
    """A round's status: step, progress (0..1), metrics, log tail and error."""

    @extend_schema(responses={200: s.RoundSerializer, 404: ERROR})
    def get(self, request, pk: int):
        return Response(s.RoundSerializer(_round_for(request, pk, Role.RESEARCHER)).data)


class RoundCancelView(APIView):
    """Cancel a round: a queued one at once; a running one stops at its next progress report (202)."""

    @extend_schema(
        request=None, responses={200: s.RoundSerializer, 202: s.RoundSerializer, 403: ERROR, 404: ERROR, 409: ERROR}
    )
    def post(self, request, pk: int):
        found = _round_for(request, pk, Role.ADMIN)
        try:
            current = rounds.round_cancel(round_id=found.pk)
        except rounds.RoundError as exc:
            raise Conflict(exc.message) from exc
        code = status.HTTP_202_ACCEPTED if current.status == "running" else status.HTTP_200_OK
        return Response(s.RoundSerializer(current).data, status=code)


class ModelVersionListView(generics.ListAPIView):
    """A project's model versions, newest first."""

    serializer_class = s.ModelVersionSerializer
    pagination_class = NewestFirst

    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=[k.value for k in ModelKind])])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        project, _ = project_for(user=self.request.user, project_id=self.kwargs["pk"], at_least=Role.RESEARCHER)
        kind = self.request.query_params.get("kind")
        if kind is not None and kind not in ModelKind.values:
            raise ValidationError({"kind": [f"Must be one of {', '.join(ModelKind.values)}."]})
        return registry.versions_of(project_id=project.pk, kind=kind)


class ModelVersionDetailView(APIView):
    @extend_schema(responses={200: s.ModelVersionSerializer, 404: ERROR})
    def get(self, request, pk: int):
        return Response(s.ModelVersionSerializer(_version_for(request, pk, Role.RESEARCHER)).data)


class ModelVersionActivateView(APIView):
    """Make this version the active one of its project and kind (e.g. roll back to an older one)."""

    @extend_schema(request=None, responses={200: s.ModelVersionSerializer, 403: ERROR, 404: ERROR, 409: ERROR})
    def post(self, request, pk: int):
        version = _version_for(request, pk, Role.ADMIN)
        try:
            version = registry.version_activate(version=version)
        except registry.VersionNotActivatable as exc:
            raise Conflict(str(exc)) from exc
        return Response(s.ModelVersionSerializer(version).data)


class PolicySampleView(APIView):
    """An answer of this policy version to a prompt (researchers), with the seed that reproduces it."""

    @extend_schema(
        request=s.PolicySampleRequestSerializer,
        responses={200: s.PolicySampleSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    def post(self, request, pk: int):
        version = _version_for(request, pk, Role.RESEARCHER)
        body = s.PolicySampleRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            answer = policy_serving.policy_sample(
                version=version,
                prompt=data["prompt"],
                max_new_tokens=data["max_new_tokens"],
                temperature=data["temperature"],
                top_p=data["top_p"],
                seed=data.get("seed", secrets.randbelow(2**63)),
            )
        except policy_serving.PolicyServingError as exc:
            _raise_for(exc)
        return Response(s.PolicySampleSerializer(answer).data)


class PolicyDownloadView(APIView):
    """This policy version as a zip: ``merged`` weights (plain ``from_pretrained``) or its LoRA ``adapter``."""

    @extend_schema(
        parameters=[OpenApiParameter("part", str, enum=list(policy_serving.PARTS), default="merged")],
        responses={(200, "application/zip"): OpenApiResponse(description="zip archive"), 400: ERROR, 404: ERROR},
    )
    def get(self, request, pk: int):
        version = _version_for(request, pk, Role.RESEARCHER)
        try:
            archive, name = policy_serving.policy_archive(
                version=version, part=request.query_params.get("part", "merged")
            )
        except policy_serving.PolicyServingError as exc:
            _raise_for(exc)
        return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")


def _raise_for(exc: policy_serving.PolicyServingError):
    if exc.field is None:
        raise Conflict(exc.message) from exc
    raise ValidationError({exc.field: [exc.message]}) from exc


class SpanScoresView(APIView):
    """Per-segment scores of a candidate (or a posted text) under the project's active span-reward model.

    Segments are sentences with Unicode code-point offsets, end exclusive (as annotation's span marks); each
    carries, per span category, the penalty P(error of that category) and the segment's reward. 409 when the
    project has no active span model yet.
    """

    @extend_schema(
        request=s.SpanScoreRequestSerializer,
        responses={200: s.SpanScoresSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        body = s.SpanScoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            version = span_scoring.span_version_for(project_id=project.pk, version_id=data.get("model_version"))
            if "candidate" in data:
                text, prompt = span_scoring.candidate_input(project_id=project.pk, candidate_id=data["candidate"])
            else:
                text, prompt = data["text"], data["prompt"]
            scores = span_scoring.span_scores(version=version, text=text, prompt=prompt)
        except span_scoring.SpanScoringError as exc:
            if exc.field is None:
                raise Conflict(exc.message) from exc
            raise ValidationError({exc.field: [exc.message]}) from exc
        return Response(s.SpanScoresSerializer(scores).data)
