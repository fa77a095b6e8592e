from django.conf import settings
from django.contrib import admin
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views import defaults
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation.api.middleware import body_too_big_message

from . import frontend


def health(request):
    return JsonResponse({"status": "ok"})


# API clients get JSON errors even for paths that match no route (DESIGN §7).
def handler404(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"message": "Nothing at this address; check the path and id.", "errors": {}}, status=404)
    return defaults.page_not_found(request, exception)


def handler400(request, exception):
    """A request Django refused before any view ran (SuspiciousOperation): a body over DATA_UPLOAD_MAX_MEMORY_SIZE,
    too many fields, a bad host."""
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):  # a form body without a Content-Length
        return JsonResponse({"message": body_too_big_message(), "errors": {}}, status=413)
    return JsonResponse({"message": f"Bad request: {exception}", "errors": {}}, status=400)


def handler403(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"message": "You may not do this.", "errors": {}}, status=403)
    return defaults.permission_denied(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"message": "Internal error; it has been logged.", "errors": {}}, status=500)
    return defaults.server_error(request)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("annotation.api.urls")),
    path("api/v1/", include("training.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", health),
    # Everything else is the web app's (frontend/), which routes itself.
    re_path(r"^(?!api/|admin/|static/|media/|healthz)(?P<path>.*)$", frontend.app, name="app"),
]

if settings.DEBUG:
    # Production serves media from storage (signed URLs); the embedded default from var/.
    urlpatterns.append(path("media/<path:path>", serve, {"document_root": settings.MEDIA_ROOT}))
