"""Checking a username and password, with a limit on wrong passwords per account.

The per-address throttle (LoginThrottle in the API) stops one client; this stops many clients (or one that
changes its address) guessing one account's password. Counts live in the default cache, shared by every web
process when CACHE_URL is set.
"""

import hashlib

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache


class SigninRefused(Exception):
    def __init__(self, message: str, *, locked_for: int | None = None):
        super().__init__(message)
        self.message = message
        self.locked_for = locked_for


def _failures_key(username: str) -> str:
    # Hashed: the cache key stays short and safe whatever the client sent as a username.
    return "tandem:signin-failures:" + hashlib.sha256(username.casefold().encode()).hexdigest()


def signin_authenticate(*, request, username: str, password: str):
    """The user with these credentials; raises :class:`SigninRefused` for a wrong pair or a locked account.

    A locked account refuses even the right password until the lock ends, so a guesser learns nothing from it."""
    key = _failures_key(username)
    if (cache.get(key) or 0) >= settings.LOGIN_ACCOUNT_FAILURES:
        minutes = -(-settings.LOGIN_ACCOUNT_LOCK_SECONDS // 60)
        raise SigninRefused(
            f"Too many wrong passwords for this account; sign-in is locked for up to {minutes} minutes.",
            locked_for=settings.LOGIN_ACCOUNT_LOCK_SECONDS,
        )
    user = authenticate(request, username=username, password=password)
    if user is None:
        # add() starts the window on the first failure only; incr() is atomic in Redis and in local memory.
        cache.add(key, 0, settings.LOGIN_ACCOUNT_LOCK_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, settings.LOGIN_ACCOUNT_LOCK_SECONDS)
        raise SigninRefused("Wrong username or password.")
    cache.delete(key)
    return user
