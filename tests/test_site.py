"""What a person opening the app's address sees."""

import pytest
from django.conf import settings

needs_build = pytest.mark.skipif(
    not (settings.FRONTEND_DIST_DIR / "index.html").exists(),
    reason="the web app is not built (make install builds it)",
)


@needs_build
@pytest.mark.parametrize("path", ["/", "/projects/7/label", "/projects/7"])
def test_browser_paths_serve_the_web_app_with_a_csrf_cookie(client, db, path):
    response = client.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<div id="root"></div>' in page and "/static/app/assets/" in page
    assert "csrftoken" in response.cookies  # the app echoes it on writes


def test_api_paths_are_not_taken_by_the_web_app(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["message"]


def test_the_api_docs_render_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    # No network at run time: the page's scripts come from our own static files, not a CDN.
    assert "cdn.jsdelivr" not in page and "/static/drf_spectacular_sidecar/" in page


def test_the_health_check_answers(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_wsgi_application_leaves_what_loading_made_out_of_the_garbage_collectors_walks():
    """gunicorn serves ``config.wsgi``: what the app loaded is frozen, so full collections skip it."""
    import subprocess
    import sys

    probe = "import gc, config.wsgi; print(gc.get_freeze_count())"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=settings.BASE_DIR
    )
    assert int(result.stdout) > 10_000
