"""Sign-in under attack: a changed password ends the old credentials, the throttle ignores forged
X-Forwarded-For headers, and wrong passwords lock one account whatever the client's address."""

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ..factories import UserFactory

PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's
NEW_PASSWORD = "a-new-long-passphrase-1"


@pytest.fixture(autouse=True)
def _a_fresh_cache():
    # Cached tokens and the sign-in counters live in the default cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shared_cache(settings, tmp_path):
    """A cache every process on the machine shares (as Redis is for a deployment), with tokens cached in it."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }
    settings.CACHE_URL = f"filecache://{tmp_path}"
    settings.TOKEN_CACHE_SECONDS = 60


def _token(username: str, *, address: str = "10.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    response = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.json()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def _sign_in(username: str, password: str, **headers):
    return APIClient(**headers).post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


@pytest.mark.parametrize("cached", [False, True], ids=["tokens cached in the process", "shared token cache"])
def test_an_admin_password_reset_ends_the_users_token_and_other_sessions_at_once(db, request, cached):
    if cached:
        request.getfixturevalue("shared_cache")
    anna = UserFactory(username="anna")
    token_client = _token("anna")
    assert token_client.get("/api/v1/me/").status_code == 200  # cached now, where a cache is on
    browser = Client()
    browser.force_login(anna)
    assert browser.get("/api/v1/me/").status_code == 200

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    response = admin.post(
        f"/admin/auth/user/{anna.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content[:2000]

    assert token_client.get("/api/v1/me/").status_code == 401
    assert browser.get("/api/v1/me/").status_code in (401, 403)
    assert not Token.objects.filter(user=anna).exists()
    # The admin's own session goes on; anna signs in with the new password and gets a new token.
    assert admin.get("/api/v1/me/").status_code == 200
    assert _sign_in("anna", NEW_PASSWORD).status_code == 200


def test_a_users_own_password_change_ends_their_token(db):
    anna = UserFactory(username="anna")
    token_client = _token("anna")
    anna.set_password(NEW_PASSWORD)
    anna.save()
    assert token_client.get("/api/v1/me/").status_code == 401


def test_forged_forwarded_for_headers_are_still_throttled(db, settings):
    settings.LOGIN_RATE = "5/min"
    UserFactory(username="anna")
    codes = [
        _sign_in("anna", PASSWORD, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(8)
    ]
    assert codes[:5] == [200] * 5
    assert codes[5:] == [429] * 3
    # Another address is not affected.
    assert _sign_in("anna", PASSWORD, REMOTE_ADDR="203.0.113.10").status_code == 200


def test_behind_a_trusted_proxy_the_address_it_forwards_is_counted(db, settings):
    settings.LOGIN_RATE = "2/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    UserFactory(username="anna")

    def through_proxy(client_address, forged=""):
        xff = f"{forged}, {client_address}" if forged else client_address
        return _sign_in("anna", PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=xff).status_code

    assert [through_proxy("198.51.100.1", forged=f"1.1.1.{i}") for i in range(3)] == [200, 200, 429]
    assert through_proxy("198.51.100.2") == 200  # another client behind the same proxy


def test_wrong_passwords_lock_the_account_whatever_the_address(db, settings):
    settings.LOGIN_ACCOUNT_FAILURES = 4
    UserFactory(username="anna")
    UserFactory(username="bert")
    for i in range(4):
        response = _sign_in("anna", "guess", REMOTE_ADDR=f"198.51.100.{i}")
        assert response.status_code == 400
        assert response.json()["message"] == "Wrong username or password."
    locked = _sign_in("ANNA", PASSWORD, REMOTE_ADDR="198.51.100.200")  # the right password, a new address
    assert locked.status_code == 429
    assert "Too many wrong passwords for this account" in locked.json()["message"]
    assert "Retry-After" in locked.headers
    # Other accounts sign in as before.
    assert _sign_in("bert", PASSWORD, REMOTE_ADDR="198.51.100.201").status_code == 200


def test_a_successful_sign_in_resets_the_count_of_wrong_passwords(db, settings):
    settings.LOGIN_ACCOUNT_FAILURES = 3
    UserFactory(username="anna")
    for _ in range(2):
        assert _sign_in("anna", "guess").status_code == 400
    assert _sign_in("anna", PASSWORD).status_code == 200
    for _ in range(2):
        assert _sign_in("anna", "guess").status_code == 400
    assert _sign_in("anna", PASSWORD).status_code == 200


def test_with_a_shared_cache_every_web_process_counts_the_same_attempts(tmp_path):
    """Two processes, as two gunicorn workers: with CACHE_URL naming a cache they share, the second one refuses
    what the first one already counted (a per-process count let each worker allow the full rate)."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    probe = (
        "import django, json; django.setup(); from django.test import Client; c = Client(REMOTE_ADDR='198.51.100.7');"
        " print(json.dumps([c.post('/api/v1/auth/token/', {}, content_type='application/json').status_code"
        " for _ in range(int(__import__('sys').argv[1]))]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CACHE_URL": f"filecache://{tmp_path}",
        "LOGIN_RATE": "3/min",
        "ALLOWED_HOSTS": "testserver",
    }

    def worker(attempts: int) -> list[int]:
        run = subprocess.run(
            [sys.executable, "-c", probe, str(attempts)],
            capture_output=True,
            text=True,
            cwd=settings.BASE_DIR,
            env=env,
        )
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout.strip().splitlines()[-1])

    assert worker(3) == [400, 400, 400]  # counted (an empty body is refused after the throttle)
    assert worker(2) == [429, 429]  # another process, the same count
