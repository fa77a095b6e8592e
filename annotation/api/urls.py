from django.urls import path, register_converter

from . import quality_views, views


class IdConverter:
    """A database id: at most 18 digits, so it always fits a 64-bit integer column
    (a larger number is simply not found, instead of overflowing the database driver)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

urlpatterns = [
    # The labelling calls first: Django tries the patterns in order, on every request.
    path("projects/<id:pk>/next/", views.NextView.as_view(), name="project-next"),
    path("comparisons/<id:pk>/judgments/", views.JudgmentCreateView.as_view(), name="judgment-create"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/token/revoke/", views.TokenRevokeView.as_view(), name="auth-token-revoke"),
    path("auth/session/", views.SessionView.as_view(), name="auth-session"),
    path("auth/session/end/", views.SessionEndView.as_view(), name="auth-session-end"),
    path("me/", views.MeView.as_view(), name="me"),
    path("me/work/", views.MyWorkView.as_view(), name="me-work"),
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
    path("projects/<id:pk>/", views.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<id:pk>/members/", views.MemberListView.as_view(), name="member-list"),
    path("projects/<id:pk>/members/<id:user_id>/", views.MemberDetailView.as_view(), name="member-detail"),
    path("projects/<id:pk>/judgments/", views.ProjectJudgmentListView.as_view(), name="project-judgments"),
    path("projects/<id:pk>/comparisons/", views.ComparisonListView.as_view(), name="project-comparisons"),
    path("projects/<id:pk>/comparisons/build/", views.ComparisonsBuildView.as_view(), name="comparisons-build"),
    path("projects/<id:pk>/stats/", views.StatsView.as_view(), name="project-stats"),
    path("projects/<id:pk>/imports/", views.ImportListView.as_view(), name="project-imports"),
    path("imports/<id:pk>/", views.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<id:pk>/cancel/", views.ImportCancelView.as_view(), name="import-cancel"),
    path("imports/<id:pk>/retry/", views.ImportRetryView.as_view(), name="import-retry"),
    path("comparisons/<id:pk>/skip/", views.SkipView.as_view(), name="comparison-skip"),
    path("comparisons/<id:pk>/release/", views.ReleaseView.as_view(), name="comparison-release"),
    path("judgments/<id:pk>/", views.JudgmentDetailView.as_view(), name="judgment-detail"),
    path("projects/<id:pk>/exports/", views.ExportListView.as_view(), name="project-exports"),
    path("projects/<id:pk>/exports/stream/", views.ExportStreamView.as_view(), name="project-export-stream"),
    path("exports/<id:pk>/", views.ExportDetailView.as_view(), name="export-detail"),
    path("exports/<id:pk>/download/", views.ExportDownloadView.as_view(), name="export-download"),
    path("exports/<id:pk>/cancel/", views.ExportCancelView.as_view(), name="export-cancel"),
    path("exports/<id:pk>/retry/", views.ExportRetryView.as_view(), name="export-retry"),
    path("projects/<id:pk>/label-imports/", views.LabelImportView.as_view(), name="project-label-imports"),
    path("projects/<id:pk>/quality/", quality_views.QualityView.as_view(), name="project-quality"),
    path(
        "projects/<id:pk>/quality/recompute/",
        quality_views.QualityRecomputeView.as_view(),
        name="project-quality-recompute",
    ),
    path(
        "projects/<id:pk>/quality/annotators/<id:user_id>/exclusion/",
        quality_views.ExclusionView.as_view(),
        name="annotator-exclusion",
    ),
    path(
        "projects/<id:pk>/quality/annotators/<id:user_id>/pause/",
        quality_views.PauseView.as_view(),
        name="annotator-pause",
    ),
    path("projects/<id:pk>/quality/agreement/", quality_views.AgreementView.as_view(), name="project-agreement"),
    path("projects/<id:pk>/quality/gold/", quality_views.GoldPromotionView.as_view(), name="project-gold"),
    path(
        "projects/<id:pk>/quality/gold/<id:comparison_id>/",
        quality_views.GoldComparisonView.as_view(),
        name="project-gold-comparison",
    ),
]
