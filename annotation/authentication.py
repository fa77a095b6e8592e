"""API tokens, with a cache of token → user, and the end of a user's tokens and sessions when the password changes.

Stock ``TokenAuthentication`` costs one query per request; at hundreds of labels per second that query is a large
share of the database's work (DESIGN §4). The cache maps a token's key to its user for ``TOKEN_CACHE_SECONDS``. It
is on by default only when ``CACHE_URL`` names a shared cache: revoking a token deletes its entry there, so every
web process stops accepting it at once. A per-process cache could not be told, so without ``CACHE_URL`` every
request reads the token from the database: one small prepared statement, not an ORM query, whose building cost
more CPU than the database spent on it. It reads the user's columns a request needs (id, username, flags); any
other loads when first read, as with ``QuerySet.only()``.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from .selectors import partial_instance
from .statements import prepared_cursor

_PREFIX = "tandem:token:"
_USER_FOR_TOKEN = f"""SELECT u.id, u.username, u.is_active, u.is_superuser, u.is_staff
FROM {Token._meta.db_table} t JOIN {get_user_model()._meta.db_table} u ON u.id = t.user_id
WHERE t.key = %s"""


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        cache_key = _PREFIX + key
        user = cache.get(cache_key) if settings.TOKEN_CACHE_SECONDS > 0 else None
        if user is None:
            user = _user_for_token(key)
            if user is None:
                raise exceptions.AuthenticationFailed("Invalid token.")
            if settings.TOKEN_CACHE_SECONDS > 0:
                cache.set(cache_key, user, settings.TOKEN_CACHE_SECONDS)
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, key)


def _user_for_token(key: str):
    with prepared_cursor() as cursor:
        cursor.execute(_USER_FOR_TOKEN, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, username, active, superuser, staff = row
    return partial_instance(
        get_user_model(),
        id=pk,
        username=username,
        is_active=bool(active),
        is_superuser=bool(superuser),
        is_staff=bool(staff),
    )


def token_revoke(*, user) -> None:
    """Delete the user's API token (they must log in again for a new one)."""
    for key in Token.objects.filter(user=user).values_list("key", flat=True):
        cache.delete(_PREFIX + key)
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


User = get_user_model()
