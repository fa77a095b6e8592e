"""REST API views: parse, check the role on the server, call a service, return.

Every view resolves the caller's role in the project first (annotation.access);
non-members get 404, members with too low a role 403.
"""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model, login, logout
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import NotFound, PermissionDenied, Throttled, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from .. import exporters, importers, queue, stats, work
from ..access import (
    Refused,
    can_create_projects,
    comparison_for,
    job_for,
    project_for,
    projects_visible,
    refusal,
)
from ..authentication import token_for, token_revoke
from ..comparisons import comparisons_build
from ..judgments import judgment_submit
from ..models import Comparison, ExportJob, ImportJob, ImportStatus, Judgment, Membership, Role
from ..projects import LastAdmin, membership_remove, membership_set, project_create, project_update
from ..selectors import judgments_visible, task_content
from ..signin import SigninRefused, signin_authenticate
from ..tasks import export_run_task, import_run_task
from . import serializers as s
from .renderers import HOT_PATH_PARSERS, HOT_PATH_RENDERERS

ERROR = OpenApiResponse(description='Error: {"message": "...", "errors": {"field": ["..."]}}')


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


# --- Auth ---------------------------------------------------------------------------------


class LoginThrottle(AnonRateThrottle):
    """Sign-in attempts per client address: REMOTE_ADDR, or X-Forwarded-For only as far as TRUSTED_PROXY_COUNT
    proxies in front vouch for it (DRF's NUM_PROXIES)."""

    scope = "login"

    def get_rate(self):
        return settings.LOGIN_RATE


def _signin(request, body):
    try:
        return signin_authenticate(request=request, **body.validated_data)
    except SigninRefused as exc:
        if exc.locked_for:
            raise Throttled(wait=exc.locked_for, detail=exc.message) from exc
        raise ValidationError(exc.message) from exc  # the pair is wrong, not one field


class TokenView(APIView):
    """Exchange a username and password for an API token (``Authorization: Token <key>``)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(request=s.TokenRequestSerializer, responses={200: s.TokenSerializer, 400: ERROR, 429: ERROR})
    def post(self, request):
        body = s.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = _signin(request, body)
        return Response({"token": token_for(user=user)})


class TokenRevokeView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _enforce_csrf(request) -> None:
    """The browser's login form must carry the CSRF token too (login CSRF), though
    no session authenticates it yet; the same check DRF's SessionAuthentication runs."""
    check = CSRFCheck(lambda _request: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        # Django's reasons end in a full stop ("CSRF cookie not set.").
        raise PermissionDenied(f"CSRF check failed: {reason.rstrip('.')}. Reload the page and try again.")


class SessionView(APIView):
    """Browser sign-in: a session cookie instead of a token (the web app uses this)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=s.TokenRequestSerializer, responses={200: s.MeSerializer, 400: ERROR, 403: ERROR, 429: ERROR}
    )
    def post(self, request):
        _enforce_csrf(request)
        body = s.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = _signin(request, body)
        login(request._request, user)
        return Response(_me(user))


class SessionEndView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _me(user) -> dict:
    return {
        "id": user.pk,
        "username": user.username,
        "is_superuser": user.is_superuser,
        "can_create_projects": can_create_projects(user),
    }


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer)
    def get(self, request):
        return Response(_me(request.user))


class MyWorkView(APIView):
    """Your projects, with how many comparisons are left for you and how many you judged today (UTC)."""

    @extend_schema(responses=s.WorkRowSerializer(many=True))
    def get(self, request):
        return Response(s.WorkRowSerializer(work.work_overview(user=request.user), many=True).data)


# --- Projects and members -------------------------------------------------------------------


class ProjectListView(generics.ListCreateAPIView):
    serializer_class = s.ProjectSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return projects_visible(user=self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request.user.is_authenticated:
            context["roles"] = dict(Membership.objects.filter(user=self.request.user).values_list("project_id", "role"))
        return context

    def perform_create(self, serializer):
        if not can_create_projects(self.request.user):
            raise PermissionDenied("Only staff with the 'add project' permission can create projects.")
        project = project_create(created_by=self.request.user, **serializer.validated_data)
        serializer.instance = project
        serializer.context["roles"] = {project.pk: Role.ADMIN.value}


class ProjectDetailView(APIView):
    def _project(self, request, pk, at_least=Role.ANNOTATOR):
        project, role = project_for(user=request.user, project_id=pk, at_least=at_least)
        return project, {"roles": {project.pk: role.value}}

    @extend_schema(responses={200: s.ProjectSerializer, 404: ERROR})
    def get(self, request, pk: int):
        project, context = self._project(request, pk)
        return Response(s.ProjectSerializer(project, context=context).data)

    @extend_schema(request=s.ProjectSerializer, responses={200: s.ProjectSerializer, 400: ERROR, 403: ERROR})
    def patch(self, request, pk: int):
        project, context = self._project(request, pk, at_least=Role.ADMIN)
        body = s.ProjectSerializer(project, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        project = project_update(project=project, **body.validated_data)
        return Response(s.ProjectSerializer(project, context=context).data)

    @extend_schema(responses={204: None, 403: ERROR})
    def delete(self, request, pk: int):
        project, _ = self._project(request, pk, at_least=Role.ADMIN)
        project.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListView(APIView):
    @extend_schema(responses=s.MembershipSerializer(many=True))
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        return Response(s.MembershipSerializer(members, many=True).data)

    @extend_schema(request=s.MembershipCreateSerializer, responses={201: s.MembershipSerializer, 400: ERROR})
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.ADMIN)
        body = s.MembershipCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = _membership_set(project, body.validated_data["username"], body.validated_data["role"])
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    def _membership(self, request, pk, user_id):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.ADMIN)
        return get_object_or_404(Membership.objects.select_related("user", "project"), project=project, user_id=user_id)

    @extend_schema(request=s.MembershipUpdateSerializer, responses={200: s.MembershipSerializer, 409: ERROR})
    def patch(self, request, pk: int, user_id: int):
        membership = self._membership(request, pk, user_id)
        body = s.MembershipUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = _membership_set(membership.project, membership.user, body.validated_data["role"])
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(responses={204: None, 409: ERROR})
    def delete(self, request, pk: int, user_id: int):
        membership = self._membership(request, pk, user_id)
        try:
            membership_remove(membership=membership)
        except LastAdmin as exc:
            return Response({"message": str(exc), "errors": {}}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _membership_set(project, user, role):
    try:
        return membership_set(project=project, user=user, role=Role(role))
    except LastAdmin as exc:
        raise ValidationError({"role": [str(exc)]}) from exc


# --- The queue ----------------------------------------------------------------------------------


class NextView(APIView):
    """Claim the next comparison to judge (a lease), or 204 when none is left for you.

    You get your oldest live lease back if you hold one (a reload does not burn a
    task). With ``ahead=1``, the task after it: your second live lease, claimed now
    if you hold only one (so the web app can fetch the next task while you work on
    this one). You hold at most two live leases per project."""

    renderer_classes = HOT_PATH_RENDERERS

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "ahead",
                int,
                enum=[0, 1],
                required=False,
                description="1: the task after your current one (a second lease), not the current one.",
            )
        ],
        responses={
            200: s.TaskSerializer,
            204: OpenApiResponse(description="Nothing left for you."),
            403: OpenApiResponse(description="Paused for low gold accuracy: the message says why."),
        },
    )
    def get(self, request, pk: int):
        ahead = request.query_params.get("ahead", "0")
        if ahead not in ("0", "1"):
            raise ValidationError({"ahead": "Must be 0 or 1."})
        try:
            claim = queue.comparison_claim(project_id=pk, annotator_id=request.user.pk, ahead=ahead == "1", member=True)
        except Refused:
            raise refusal(user=request.user, project_id=pk) from None
        except queue.Paused as paused:
            raise PermissionDenied(f"You are paused in this project. {paused.reason}") from None
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        task = claim.content or task_content(comparison_id=claim.comparison_id)
        # Left to right as shown: the web app keeps this order (a position check's swap must reach the screen).
        candidates = queue.claim_candidates(claim, task, annotator_id=request.user.pk)
        return Response(
            {
                "comparison": task.comparison_id,
                "project": pk,
                "prompt": {"id": task.prompt_id, "text": task.prompt_text, "context": task.prompt_context},
                "candidates": [
                    {
                        "id": c.id,
                        "text": c.text,
                        "mime_type": c.mime_type,
                        "media_url": request.build_absolute_uri(c.media_url) if c.media_url else None,
                    }
                    for c in candidates
                ],
                "lease_expires_at": claim.expires_at,
                "resumed": claim.resumed,
            }
        )


NO_COMPARISON = "No comparison with this id in a project you are a member of."


def _comparison_for(request, comparison_id: int) -> Comparison:
    """The comparison (id, project id), if the caller is a member of its project."""
    comparison = comparison_for(comparison_id=comparison_id, user=request.user)
    if comparison is None:
        raise NotFound(NO_COMPARISON)
    return comparison


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="A unique string per judgment (e.g. a UUID). A retry with the same key returns the first result.",
)


class JudgmentCreateView(APIView):
    renderer_classes = HOT_PATH_RENDERERS
    parser_classes = HOT_PATH_PARSERS

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=s.JudgmentCreateSerializer,
        responses={
            201: s.JudgmentSerializer,
            200: OpenApiResponse(
                s.JudgmentSerializer, description="A retry: the judgment first recorded with this key."
            ),
            400: ERROR,
            409: ERROR,
        },
    )
    def post(self, request, pk: int):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 255:
            raise ValidationError(
                {
                    "Idempotency-Key": [
                        "This header is required: a unique string of at most 255 characters per judgment."
                    ]
                }
            )
        body = s.JudgmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            judgment, created = judgment_submit(
                comparison_id=pk,
                annotator_id=request.user.pk,
                answer=body.to_answer(),
                idempotency_key=key,
                member=True,
            )
        except Refused:
            raise NotFound(NO_COMPARISON) from None
        # The judgment and its spans are in memory (a retry's too), and its annotator is the caller: answer
        # without reading them back (this is the hot path of labelling).
        judgment.annotator = request.user
        return Response(s.judgment_data(judgment), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SkipView(APIView):
    """Skip a comparison: it is never served to you again. Idempotent."""

    @extend_schema(request=None, responses={204: None, 409: ERROR})
    def post(self, request, pk: int):
        comparison = _comparison_for(request, pk)
        queue.comparison_skip(comparison=comparison, annotator_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReleaseView(APIView):
    """Give your live lease back unanswered; you may be served it again later."""

    @extend_schema(request=None, responses={204: None, 409: ERROR})
    def post(self, request, pk: int):
        comparison = _comparison_for(request, pk)
        queue.lease_release(comparison=comparison, annotator_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Judgments, comparisons, stats ------------------------------------------------------------


class ProjectJudgmentListView(generics.ListAPIView):
    """Judgments of a project: researchers and admins see all, annotators only their own."""

    serializer_class = s.JudgmentSerializer
    pagination_class = NewestFirst

    @extend_schema(
        parameters=[
            OpenApiParameter("annotator", int, description="Only this annotator's judgments (researchers)."),
            OpenApiParameter("comparison", int, description="Only judgments of this comparison."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        _, role = project_for(user=self.request.user, project_id=self.kwargs["pk"])
        qs = judgments_visible(project_id=self.kwargs["pk"], user=self.request.user, see_all=role != Role.ANNOTATOR)
        for name in ("annotator", "comparison"):
            value = self.request.query_params.get(name)
            if value is not None:
                if not (value.isascii() and value.isdecimal()) or len(value) > 18:
                    raise ValidationError({name: ["Must be an integer id."]})
                qs = qs.filter(**{f"{name}_id": int(value)})
        return qs


class JudgmentDetailView(APIView):
    @extend_schema(responses={200: s.JudgmentSerializer, 404: ERROR})
    def get(self, request, pk: int):
        not_found = NotFound("No judgment with this id that you may see.")
        judgment = Judgment.objects.select_related("annotator").prefetch_related("spans").filter(pk=pk).first()
        if judgment is None:
            raise not_found
        try:
            _, role = project_for(user=request.user, project_id=judgment.project_id)
        except Http404:
            raise not_found from None  # the same answer as for a missing id: ids are not enumerable
        if role == Role.ANNOTATOR and judgment.annotator_id != request.user.pk:
            raise not_found
        return Response(s.JudgmentSerializer(judgment).data)


class ComparisonListView(generics.ListAPIView):
    serializer_class = s.ComparisonSerializer
    pagination_class = NewestFirst

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=["open", "done", "paused"])])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        project, _ = project_for(user=self.request.user, project_id=self.kwargs["pk"], at_least=Role.RESEARCHER)
        qs = Comparison.objects.filter(project=project)
        wanted_status = self.request.query_params.get("status")
        if wanted_status is not None:
            if wanted_status not in ("open", "done", "paused"):
                raise ValidationError({"status": ["Must be one of open, done, paused."]})
            qs = qs.filter(status=wanted_status)
        return qs


class ComparisonsBuildView(APIView):
    """Build comparisons from the project's prompts that have at least two candidates."""

    @extend_schema(request=s.ComparisonsBuildSerializer, responses={201: s.ComparisonsBuildResultSerializer})
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        body = s.ComparisonsBuildSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            created = comparisons_build(project=project, **body.validated_data)
        except ValueError as exc:
            raise ValidationError({"mode": [str(exc)]}) from exc
        return Response({"created": created}, status=status.HTTP_201_CREATED)


class StatsView(APIView):
    @extend_schema(responses=s.StatsSerializer)
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        return Response(stats.project_stats(project=project))


# --- Import -----------------------------------------------------------------------------------


class ImportListView(APIView):
    """Upload a file to import. Small files are imported at once (201, final status);
    larger ones run as a background job (202) whose progress ``GET imports/{id}`` reports.

    Image candidates (kind ``bundle`` or ``candidates``): upload a ``.zip`` holding the manifest (one
    ``.jsonl``/``.csv``/``.parquet`` file at its top level) and the files its candidates name with
    ``"media": "img/cat-1.png"``; or send the manifest as ``file`` and the images as ``media`` files. Every
    file is checked by its content; on any error nothing is imported and no file is stored."""

    @extend_schema(responses=s.ImportJobSerializer(many=True))
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        jobs = ImportJob.objects.filter(project=project).order_by("-id")[:100]
        return Response(s.ImportJobSerializer(jobs, many=True).data)

    @extend_schema(
        request={"multipart/form-data": s.ImportCreateSerializer},
        responses={201: s.ImportJobSerializer, 202: s.ImportJobSerializer, 400: ERROR},
    )
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        body = s.ImportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        media = body.validated_data.get("media") or []
        size = upload.size + sum(f.size for f in media)
        if size > settings.IMPORT_MAX_BYTES:
            raise ValidationError(
                {"file": [f"The upload is larger than the limit of {settings.IMPORT_MAX_BYTES} bytes."]}
            )
        try:
            if media:
                job = importers.import_job_create_with_media(
                    project=project,
                    kind=body.validated_data["kind"],
                    manifest=upload,
                    manifest_name=upload.name,
                    media=media,
                    created_by=request.user,
                )
            else:
                job = importers.import_job_create(
                    project=project,
                    kind=body.validated_data["kind"],
                    uploaded_file=upload,
                    original_name=upload.name,
                    file_format=body.validated_data.get("file_format"),
                    created_by=request.user,
                )
        except importers.ImportRejected as exc:
            errors: dict[str, list[str]] = {}
            for error in exc.errors:
                errors.setdefault(error.get("field") or "file", []).append(error["message"])
            raise ValidationError(errors) from exc
        if size <= settings.IMPORT_INLINE_MAX_BYTES:
            job = importers.import_job_run(job_id=job.pk)
            code = status.HTTP_201_CREATED if job.status == ImportStatus.SUCCEEDED else status.HTTP_400_BAD_REQUEST
            if code == status.HTTP_400_BAD_REQUEST:
                return Response(
                    {
                        "message": job.message or "The file has invalid rows; nothing was imported.",
                        "errors": {"file": [_row_error(e) for e in job.errors]},
                        "job": s.ImportJobSerializer(job).data,
                    },
                    status=code,
                )
            return Response(s.ImportJobSerializer(job).data, status=code)
        transaction.on_commit(lambda: import_run_task.delay(job.pk))
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def _row_error(error: dict) -> str:
    where = f"line {error['line']}" if error.get("line") else "file"
    field = f" ({error['field']})" if error.get("field") else ""
    return f"{where}{field}: {error['message']}"


class ImportDetailView(APIView):
    @extend_schema(responses={200: s.ImportJobSerializer, 404: ERROR})
    def get(self, request, pk: int):
        return Response(s.ImportJobSerializer(job_for(user=request.user, model=ImportJob, job_id=pk)).data)


def _job_action(request, pk: int, model, serializer, action: str) -> Response:
    """Cancel or retry a background job (``annotation/jobs.py``); researchers of its project only."""
    from .. import jobs  # a local name: the views' job listings call theirs "jobs"

    job = job_for(user=request.user, model=model, job_id=pk)
    kind = jobs.import_jobs() if model is ImportJob else jobs.export_jobs()
    try:
        job = jobs.job_cancel(kind, job.pk) if action == "cancel" else jobs.job_retry(kind, job.pk)
    except jobs.JobStateError as exc:
        return Response({"message": exc.message, "errors": {}}, status=status.HTTP_409_CONFLICT)
    return Response(serializer(job, context={"request": request}).data)


class ImportCancelView(APIView):
    """Cancel an import: a queued one at once; a running one stops at its next progress report or before it
    commits (nothing is imported). 409 when it has already finished."""

    @extend_schema(request=None, responses={200: s.ImportJobSerializer, 404: ERROR, 409: ERROR})
    def post(self, request, pk: int):
        return _job_action(request, pk, ImportJob, s.ImportJobSerializer, "cancel")


class ImportRetryView(APIView):
    """Run a failed or cancelled import again, from its stored file, on the worker. 409 for any other status."""

    @extend_schema(request=None, responses={200: s.ImportJobSerializer, 404: ERROR, 409: ERROR})
    def post(self, request, pk: int):
        return _job_action(request, pk, ImportJob, s.ImportJobSerializer, "retry")


# --- Export -----------------------------------------------------------------------------------


def _export_request(data: dict):
    try:
        return exporters.export_request_parse(
            shape=data.get("shape"),
            file_format=data.get("file_format"),
            filters=data.get("filters"),
            options=data.get("options"),
            media=data.get("media"),
        )
    except exporters.ExportInvalid as exc:
        raise ValidationError(exc.errors) from exc


class ExportListView(APIView):
    """Exports as background jobs (202): progress in ``GET exports/{id}``, then a download link.
    For a direct download streamed as it is written, use ``GET projects/{id}/exports/stream/``."""

    @extend_schema(responses=s.ExportJobSerializer(many=True))
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        jobs = ExportJob.objects.filter(project=project).order_by("-id")[:100]
        return Response(s.ExportJobSerializer(jobs, many=True, context={"request": request}).data)

    @extend_schema(request=s.ExportCreateSerializer, responses={202: s.ExportJobSerializer, 400: ERROR})
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        body = s.ExportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        export_request = _export_request(body.validated_data)
        base_url = request.build_absolute_uri("/")
        job = exporters.export_job_create(
            project=project, request=export_request, created_by=request.user, base_url=base_url
        )
        transaction.on_commit(lambda: export_run_task.delay(job.pk, base_url))
        return Response(s.ExportJobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def _export_job_for(request, pk: int):
    return job_for(user=request.user, model=ExportJob, job_id=pk)


class ExportCancelView(APIView):
    """Cancel an export: a queued one at once; a running one stops at its next progress report (no file is
    kept). 409 when it has already finished."""

    @extend_schema(request=None, responses={200: s.ExportJobSerializer, 404: ERROR, 409: ERROR})
    def post(self, request, pk: int):
        return _job_action(request, pk, ExportJob, s.ExportJobSerializer, "cancel")


class ExportRetryView(APIView):
    """Run a failed or cancelled export again with the same request, on the worker. 409 for any other status."""

    @extend_schema(request=None, responses={200: s.ExportJobSerializer, 404: ERROR, 409: ERROR})
    def post(self, request, pk: int):
        return _job_action(request, pk, ExportJob, s.ExportJobSerializer, "retry")


class ExportDetailView(APIView):
    @extend_schema(responses={200: s.ExportJobSerializer, 404: ERROR})
    def get(self, request, pk: int):
        return Response(s.ExportJobSerializer(_export_job_for(request, pk), context={"request": request}).data)


class ExportDownloadView(APIView):
    """The finished export's zip archive: served from the local media folder, or a redirect to the storage's
    expiring signed URL (S3-compatible storage in production)."""

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY, 302: None, 404: ERROR, 409: ERROR})
    def get(self, request, pk: int):
        job = _export_job_for(request, pk)
        if job.status != "succeeded" or not job.file:
            return Response(
                {"message": f"The export is {job.status}; there is nothing to download yet.", "errors": {}},
                status=status.HTTP_409_CONFLICT,
            )
        if isinstance(job.file.storage, FileSystemStorage):
            return FileResponse(job.file.open("rb"), as_attachment=True, filename=exporters.export_download_name(job))
        return HttpResponseRedirect(job.file.url)


class ExportStreamView(APIView):
    """Download an export directly, streamed as it is written: a zip archive of the data file(s), the dataset
    card (``README.md``) and, with ``media=pack``, the media. Filters as query parameters (lists
    comma-separated); for big projects prefer a job (``POST projects/{id}/exports/``)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("shape", str, required=True, enum=["pairs", "rankings", "judgments", "consensus"]),
            OpenApiParameter("file_format", str, required=True, enum=["jsonl", "csv", "parquet", "hf"]),
            OpenApiParameter("form", str, enum=["standard", "conversational"]),
            OpenApiParameter("ties", str, enum=["drop", "soft"]),
            OpenApiParameter("margin_scale", float),
            OpenApiParameter(
                "spreadsheet_safe",
                bool,
                description="csv: text cells starting with = + - @ TAB or CR get a leading ' (no formulas run).",
            ),
            OpenApiParameter("media", str, enum=["urls", "pack"]),
            OpenApiParameter("date_from", str),
            OpenApiParameter("date_to", str),
            OpenApiParameter("annotators", str, description="Comma-separated usernames."),
            OpenApiParameter("rounds", str, description="Comma-separated round ids."),
            OpenApiParameter("split", str, enum=["train", "eval"]),
            OpenApiParameter("min_agreement", float),
            OpenApiParameter("gold", str, enum=["exclude", "include", "only"]),
        ],
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 400: ERROR},
    )
    def get(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        q = request.query_params
        filter_keys = ("date_from", "date_to", "annotators", "rounds", "split", "min_agreement", "gold")
        export_request = _export_request(
            {
                "shape": q.get("shape"),
                "file_format": q.get("file_format"),
                "filters": {k: q[k] for k in filter_keys if k in q},
                "options": {k: q[k] for k in exporters.OPTION_NAMES if k in q},
                "media": q.get("media"),
            }
        )
        stream = exporters.export_stream(project, export_request, base_url=request.build_absolute_uri("/"))
        response = StreamingHttpResponse(stream, content_type="application/zip")
        name = exporters.export_download_name(project, export_request.shape, export_request.file_format)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class LabelImportView(APIView):
    """Import existing labels — preference pairs or raw judgments (the ``judgments`` export shape) — all or
    nothing, in the request (files up to ``IMPORT_INLINE_MAX_BYTES``; larger ones, and Hugging Face datasets on
    disk, with ``manage.py import_labels``). A bad file answers 400 with every bad line; nothing is written."""

    @extend_schema(
        request={"multipart/form-data": s.LabelImportSerializer},
        responses={201: s.LabelImportResultSerializer, 400: ERROR},
    )
    def post(self, request, pk: int):
        project, _ = project_for(user=request.user, project_id=pk, at_least=Role.RESEARCHER)
        body = s.LabelImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        if upload.size > settings.IMPORT_INLINE_MAX_BYTES:
            raise ValidationError(
                {"file": [f"Larger than {settings.IMPORT_INLINE_MAX_BYTES} bytes: use `manage.py import_labels`."]}
            )
        file_format = body.validated_data.get("file_format") or {
            ".jsonl": "jsonl",
            ".csv": "csv",
            ".parquet": "parquet",
        }.get(Path(upload.name).suffix.lower())
        if file_format is None:
            raise ValidationError({"file_format": ["Cannot tell the format from the file name; give file_format."]})
        if body.validated_data.get("annotator"):
            if not get_user_model().objects.filter(username=body.validated_data["annotator"]).exists():
                raise ValidationError({"annotator": ["No user with this name."]})
        try:
            job = importers.labelled_import_job_create(
                project=project,
                kind=body.validated_data["kind"],
                uploaded_file=upload,
                original_name=upload.name,
                file_format=file_format,
                annotator=body.validated_data.get("annotator"),
                created_by=request.user,
            )
        except importers.ImportRejected as exc:
            raise ValidationError({e.get("field") or "file": [e["message"]] for e in exc.errors}) from exc
        # An import job like any other (listed with the imports; a dead worker's job is recovered by the sweep),
        # run here in the request: label files through the API are small.
        job = importers.import_job_run(job_id=job.pk)
        if job.status != ImportStatus.SUCCEEDED:
            errors = job.errors or [{"message": job.message}]
            return Response(
                {
                    "message": job.message if len(errors) == 1 else "The file has invalid rows; nothing was imported.",
                    "errors": {"file": [_row_error(e) for e in errors]},
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        counts = job.result
        return Response(counts, status=status.HTTP_201_CREATED)
