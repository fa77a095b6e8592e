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


def test_the_wsgi_application_loads_its_views_and_leaves_what_loading_made_out_of_the_garbage_collectors_walks():
    """gunicorn serves ``config.wsgi``: the views and what they import are loaded before the first request (so
    no user waits for an import), and all of it frozen, so full collections skip it."""
    import json
    import subprocess
    import sys

    probe = (
        "import gc, json, sys, config.wsgi; "
        "print(json.dumps([gc.get_freeze_count(), [m in sys.modules for m in sys.argv[1:]]]))"
    )
    loaded = ["annotation.api.views", "training.api.views", "annotation.exporters", "pyarrow"]
    result = subprocess.run(
        [sys.executable, "-c", probe, *loaded], capture_output=True, text=True, check=True, cwd=settings.BASE_DIR
    )
    frozen, present = json.loads(result.stdout)
    assert frozen > 10_000
    assert dict(zip(loaded, present, strict=True)) == dict.fromkeys(loaded, True)


@needs_build
def test_the_web_app_forbids_scripts_from_anywhere_but_this_site(client, db):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy


def _settings_with(env: dict) -> dict:
    """The TLS settings a fresh process reads from this environment."""
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import json, django; from django.conf import settings; django.setup(); print(json.dumps({k: getattr(settings,"
        " k, None) for k in ('SECURE_PROXY_SSL_HEADER', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS',"
        " 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'TOKEN_CACHE_SECONDS')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_tls_settings_are_off_by_default_and_turned_on_by_the_environment():
    assert _settings_with({}) == {
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "TOKEN_CACHE_SECONDS": 60,  # in each process, ended at once by the revocation mark
    }
    on = {
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SESSION_COOKIE_SECURE": "1",
        "CSRF_COOKIE_SECURE": "1",
        "CACHE_URL": "redis://localhost:6379/1",
    }
    assert _settings_with(on) == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "TOKEN_CACHE_SECONDS": 60,
    }


def test_the_production_compose_file_turns_the_tls_settings_on():
    import yaml

    environment = yaml.safe_load((settings.BASE_DIR / "docker" / "compose.yaml").read_text())["services"]["web"][
        "environment"
    ]
    for name in ("SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        assert environment[name].startswith("${" + name + ":-") and not environment[name].endswith(":-0}"), name
    assert (
        "SECURE_HSTS_SECONDS: ${SECURE_HSTS_SECONDS:-31536000}"
        in (settings.BASE_DIR / "docker" / "compose.yaml").read_text()
    )
