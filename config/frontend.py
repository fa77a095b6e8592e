"""The web app: one HTML page (frontend/dist/index.html, built by Vite) for every
browser path outside the API, admin and static files; the app routes itself."""

from functools import cache

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie

NOT_BUILT = (
    "<!doctype html><title>Tandem</title><p>The web app is not built. Run <code>make install</code> "
    "(or <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>). The API is at "
    '<a href="/api/docs/">/api/docs/</a>.</p>'
)


@cache
def _index_html() -> str | None:
    index = settings.FRONTEND_DIST_DIR / "index.html"
    return index.read_text(encoding="utf-8") if index.exists() else None


@ensure_csrf_cookie  # the app sends this cookie back as X-CSRFToken on every write
def app(request, path=""):
    html = _index_html() if not settings.DEBUG else _index_html.__wrapped__()
    if html is None:
        return HttpResponse(NOT_BUILT, status=503)
    response = HttpResponse(html)
    response["Cache-Control"] = "no-cache"  # the page names hashed assets; it must be fresh
    if settings.CONTENT_SECURITY_POLICY:
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
    return response
