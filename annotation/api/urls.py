from django.urls import path

from . import views

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/token/revoke/", views.TokenRevokeView.as_view(), name="auth-token-revoke"),
    path("me/", views.MeView.as_view(), name="me"),
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
    path("projects/<int:pk>/", views.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<int:pk>/members/", views.MemberListView.as_view(), name="member-list"),
    path("projects/<int:pk>/members/<int:user_id>/", views.MemberDetailView.as_view(), name="member-detail"),
    path("projects/<int:pk>/next/", views.NextView.as_view(), name="project-next"),
    path("projects/<int:pk>/judgments/", views.ProjectJudgmentListView.as_view(), name="project-judgments"),
    path("projects/<int:pk>/comparisons/", views.ComparisonListView.as_view(), name="project-comparisons"),
    path("projects/<int:pk>/comparisons/build/", views.ComparisonsBuildView.as_view(), name="comparisons-build"),
    path("projects/<int:pk>/stats/", views.StatsView.as_view(), name="project-stats"),
    path("projects/<int:pk>/imports/", views.ImportListView.as_view(), name="project-imports"),
    path("imports/<int:pk>/", views.ImportDetailView.as_view(), name="import-detail"),
    path("comparisons/<int:pk>/judgments/", views.JudgmentCreateView.as_view(), name="judgment-create"),
    path("comparisons/<int:pk>/skip/", views.SkipView.as_view(), name="comparison-skip"),
    path("comparisons/<int:pk>/release/", views.ReleaseView.as_view(), name="comparison-release"),
    path("judgments/<int:pk>/", views.JudgmentDetailView.as_view(), name="judgment-detail"),
]
