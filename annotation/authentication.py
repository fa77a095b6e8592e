"""Token authentication with a short per-process cache.

Stock ``TokenAuthentication`` costs one query per request; at hundreds of labels
per second that query is a large share of the database's work (DESIGN §4). The
cache maps a token's key to its user id for ``TOKEN_CACHE_SECONDS``; a revoked
token therefore keeps working for at most that long on a process that cached it
(``token_revoke`` clears the local entry at once).
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

_PREFIX = "tandem:token:"


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str):
        cache_key = _PREFIX + key
        user = cache.get(cache_key)
        if user is None:
            try:
                token = Token.objects.select_related("user").get(key=key)
            except Token.DoesNotExist:
                raise exceptions.AuthenticationFailed("Invalid token.") from None
            user = token.user
            cache.set(cache_key, user, settings.TOKEN_CACHE_SECONDS)
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, key)


def token_revoke(*, user) -> None:
    """Delete the user's API token (they must log in again for a new one)."""
    for key in Token.objects.filter(user=user).values_list("key", flat=True):
        cache.delete(_PREFIX + key)
    Token.objects.filter(user=user).delete()


def token_for(*, user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


User = get_user_model()
