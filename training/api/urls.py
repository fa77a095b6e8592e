"""Training API routes, mounted under /api/v1/ beside annotation's."""

from django.urls import path

import annotation.api.urls  # noqa: F401  (registers the "id" path converter used below)

from . import views

urlpatterns = [
    path("projects/<id:pk>/rounds/", views.RoundListView.as_view(), name="project-rounds"),
    path("projects/<id:pk>/training-settings/", views.TrainingSettingsView.as_view(), name="project-training-settings"),
    path("rounds/<id:pk>/", views.RoundDetailView.as_view(), name="round-detail"),
    path("rounds/<id:pk>/cancel/", views.RoundCancelView.as_view(), name="round-cancel"),
    path("projects/<id:pk>/model-versions/", views.ModelVersionListView.as_view(), name="project-model-versions"),
    path("model-versions/<id:pk>/", views.ModelVersionDetailView.as_view(), name="model-version-detail"),
    path("projects/<id:pk>/span-scores/", views.SpanScoresView.as_view(), name="project-span-scores"),
    path("model-versions/<id:pk>/sample/", views.PolicySampleView.as_view(), name="model-version-sample"),
    path("model-versions/<id:pk>/download/", views.PolicyDownloadView.as_view(), name="model-version-download"),
    path("model-versions/<id:pk>/activate/", views.ModelVersionActivateView.as_view(), name="model-version-activate"),
]
