"""API tokens cached in each web process without a shared cache: read once, and ended at once in every process
on the host when another one revokes the token or changes its user (annotation/authentication.py)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotation import authentication
from annotation.authentication import token_for

from ..factories import UserFactory
from ..workers import ROOT, database_url


@pytest.fixture
def process_cache(settings):
    """The embedded default: no CACHE_URL, tokens cached in this process."""
    settings.CACHE_URL = ""
    settings.TOKEN_CACHE_SECONDS = 60
    authentication._process_cache.entries.clear()
    yield
    authentication._process_cache.entries.clear()


def _client(user) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {token_for(user=user)}")


def _me(client) -> tuple[int, int]:
    """Status of GET /me/ and the statements it ran."""
    with CaptureQueriesContext(connection) as queries:
        status = client.get("/api/v1/me/").status_code
    return status, len(queries)


def _in_another_process(code: str) -> None:
    """Run ``code`` in a fresh Django process on the test database and the same VAR_DIR, as another web worker."""
    run = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "TANDEM_VAR_DIR": str(settings.VAR_DIR),
            "SECRET_KEY": settings.SECRET_KEY,
        },
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.django_db(transaction=True)
def test_a_token_is_read_from_the_database_once_per_process(process_cache):
    client = _client(UserFactory(username="anna"))
    status, first = _me(client)
    assert status == 200
    status, again = _me(client)
    assert status == 200
    assert again == first - 1  # the token's statement, gone


# What another web process does to anna, as a statement on the user ``user``.
ENDINGS = {
    "token revoked": "from annotation.authentication import token_revoke; token_revoke(user=user)",
    "user deactivated": "user.is_active = False; user.save()",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_a_token_ended_in_another_process_stops_working_here_at_once(process_cache, ending):
    anna = UserFactory(username="anna")
    client = _client(anna)
    assert _me(client)[0] == 200  # cached here now
    _in_another_process(
        f"from django.contrib.auth import get_user_model\nuser = get_user_model().objects.get(pk={anna.pk})\n{ending}"
    )
    assert _me(client)[0] == 401


@pytest.mark.django_db(transaction=True)
def test_another_users_sign_in_leaves_the_cached_tokens_alone(process_cache):
    client = _client(UserFactory(username="anna"))
    assert _me(client)[0] == 200
    UserFactory(username="bert")
    signed_in = APIClient().post("/api/v1/auth/token/", {"username": "bert", "password": "pw-for-tests"}, format="json")
    assert signed_in.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/me/").status_code == 200
    assert not any("authtoken_token" in q["sql"] for q in queries)


@pytest.mark.django_db(transaction=True)
def test_a_change_that_bypasses_the_signals_shows_once_the_entry_expires(process_cache, monkeypatch):
    anna = UserFactory(username="anna")
    client = _client(anna)
    assert _me(client)[0] == 200
    get_user_model().objects.filter(pk=anna.pk).update(is_active=False)  # no save(), so no signal
    assert _me(client)[0] == 200  # still cached: the documented limit
    later = authentication.time.monotonic() + settings.TOKEN_CACHE_SECONDS + 1
    monkeypatch.setattr(authentication.time, "monotonic", lambda: later)
    assert _me(client)[0] == 401
