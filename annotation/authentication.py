"""API tokens: token → user, cached; a user's tokens and sessions end when the password changes.

Stock ``TokenAuthentication`` costs one query per request; at hundreds of labels per second that query is a large
share of a label's work (DESIGN §4). So a token's user is cached for ``TOKEN_CACHE_SECONDS``:

- with ``CACHE_URL``, in that shared cache, whose entry is deleted when the token dies or its user changes;
- without one, in each process's memory, where an entry holds only while the *revocation mark* (a file in
  ``VAR_DIR`` that each such change appends to) is as it was before the entry's user was read: one ``stat`` a
  request, and every process on the host stops accepting a revoked token at once. Several hosts need
  ``CACHE_URL``, as the sign-in limits do.

Both are told by the same signal handlers: a token deleted (revoked, a password changed, the user deleted) or a
user saved (deactivated, made staff, …). Changes that bypass ``save`` (``QuerySet.update``) show within the TTL.
A cache miss reads the user's columns a request needs (id, username, flags) with one small prepared statement; any
other loads when first read, as with ``QuerySet.only()``.
"""

import os
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from .selectors import partial_instance
from .statements import prepared_cursor

User = get_user_model()

_PREFIX = "tandem:token:"
_USER_FOR_TOKEN = f"""SELECT u.id, u.username, u.is_active, u.is_superuser, u.is_staff
FROM {Token._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id
WHERE t.key = %s"""
_PROCESS_CACHE_MAX = 10_000
"""Tokens one process keeps at most; past it the cache starts again (a few bytes each, read back on demand)."""

UserRow = tuple[int, str, bool, bool, bool]


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        row = _user_row(key)
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        pk, username, active, superuser, staff = row
        if not active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        # A fresh instance per request: a shared one would carry one request's attribute caches into the next.
        user = partial_instance(
            User, id=pk, username=username, is_active=active, is_superuser=superuser, is_staff=staff
        )
        return (user, key)


def _user_row(key: str) -> UserRow | None:
    if settings.TOKEN_CACHE_SECONDS <= 0:
        return _user_row_read(key)
    if settings.CACHE_URL:
        row = cache.get(_PREFIX + key)
        if row is None and (row := _user_row_read(key)) is not None:
            cache.set(_PREFIX + key, row, settings.TOKEN_CACHE_SECONDS)
        return row
    mark = _revocation_mark()  # read before the user: a revocation after this read changes the mark
    row = _process_cache.get(key, mark)
    if row is None and (row := _user_row_read(key)) is not None:
        _process_cache.set(key, row, mark)
    return row


def _user_row_read(key: str) -> UserRow | None:
    with prepared_cursor() as cursor:
        cursor.execute(_USER_FOR_TOKEN, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, username, active, superuser, staff = row
    return pk, username, bool(active), bool(superuser), bool(staff)


class _ProcessTokenCache:
    """Token key → (user row, the revocation mark read before it, expiry) in this process's memory."""

    def __init__(self):
        self.entries: dict[str, tuple[UserRow, tuple[int, int, int], float]] = {}

    def get(self, key: str, mark: tuple[int, int, int]) -> UserRow | None:
        entry = self.entries.get(key)
        if entry is None or entry[1] != mark or entry[2] < time.monotonic():
            return None
        return entry[0]

    def set(self, key: str, row: UserRow, mark: tuple[int, int, int]) -> None:
        if len(self.entries) >= _PROCESS_CACHE_MAX:
            self.entries.clear()
        self.entries[key] = (row, mark, time.monotonic() + settings.TOKEN_CACHE_SECONDS)


_process_cache = _ProcessTokenCache()


def _revocation_mark() -> tuple[int, int, int]:
    """What the mark file looks like now; each revocation grows it by a byte, so any two marks differ."""
    try:
        st = os.stat(settings.TOKEN_REVOCATION_MARK)
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _revocation_mark_advance() -> None:
    with open(settings.TOKEN_REVOCATION_MARK, "ab") as mark:
        mark.write(b"\n")


def token_cache_forget(keys) -> None:
    """End the cached entries of these tokens in every process: now, and again once the current transaction
    commits (until then other connections still see the token, and one may cache it anew)."""
    keys = list(keys) if settings.CACHE_URL else []  # a process cache is ended by the mark, whatever the keys

    def forget():
        if not settings.CACHE_URL:
            _revocation_mark_advance()
        elif keys:
            cache.delete_many([_PREFIX + key for key in keys])

    forget()
    transaction.on_commit(forget)


def token_cache_signals_connect() -> None:
    """Called once the apps are ready (``AnnotationConfig.ready``)."""
    post_delete.connect(_token_deleted, sender=Token, dispatch_uid="tandem-token-deleted")
    post_save.connect(_user_saved, sender=User, dispatch_uid="tandem-user-saved")


def _token_deleted(sender, instance, **kwargs) -> None:
    token_cache_forget([instance.key])


def _user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    # A sign-in saves only last_login, which changes nothing a token grants.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    token_cache_forget(Token.objects.filter(user_id=instance.pk).values_list("key", flat=True))


def token_revoke(*, user) -> None:
    """Delete the user's API token (they must log in again for a new one); cached copies end with it."""
    Token.objects.filter(user=user).delete()


def token_for(*, user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


class EndTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS for its ``password_changed`` hook, which Django calls whenever a saved
    user's password was set (their own change, an admin's reset, ``manage.py changepassword``): the user's API
    token dies with the old password. Their other sessions end by themselves: Django keys each session to a hash
    of the password, and the one that made the change is kept by ``update_session_auth_hash``. (Django also
    re-saves a password when it re-hashes it at sign-in after a hasher change: that sign-in gets a new token.)"""

    def validate(self, password, user=None) -> None:
        return None

    def password_changed(self, password, user=None) -> None:
        if user is not None and user.pk is not None:
            token_revoke(user=user)

    def get_help_text(self) -> str:
        return ""
