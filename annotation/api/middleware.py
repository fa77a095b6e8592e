"""Refusing hostile requests before a view runs, with the API's JSON error shape; and the browser's middleware,
which API calls authenticated by token pass over."""

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

NUL_MESSAGE = "Must not hold a NUL character (\\u0000)."


class RequestGuardMiddleware:
    """Two checks for every view (the API's, the admin's, the web app's page):

    - a NUL character in a query parameter (its name or value) is a 400 naming the parameter: databases store no
      NUL (Postgres fails the query) and no parameter here has a use for one;
    - a body over DATA_UPLOAD_MAX_MEMORY_SIZE that is not a multipart upload (whose files stream to disk) is a 413.
      Django enforces the limit only where it parses a form, and then answers with an HTML page; DRF reads JSON
      of any size into memory."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            for name, values in request.GET.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    name = name.replace("\x00", "")
                    return _error(400, f"{name}: {NUL_MESSAGE}", {name: [NUL_MESSAGE]})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _content_length(request) > limit and not _multipart(request):
            return _error(413, body_too_big_message(), {})
        return self.get_response(request)


def body_too_big_message() -> str:
    return (
        f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE); "
        "send less, or upload a file as multipart/form-data."
    )


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _multipart(request) -> bool:
    return request.META.get("CONTENT_TYPE", "").startswith("multipart/")


def _error(status: int, message: str, errors: dict) -> JsonResponse:
    return JsonResponse({"message": message, "errors": errors}, status=status)


# The session's own endpoints (sign-in and sign-out) need the session whatever the request carries.
_SESSION_PATHS = "/api/v1/auth/session/"


def token_api_call(request) -> bool:
    """Whether the request is an API call that authenticates with a token. DRF's ``TokenAuthentication`` (first in
    DEFAULT_AUTHENTICATION_CLASSES) either authenticates such a call or refuses it, so it never needs the session,
    nor CSRF protection (which guards cookie-authenticated calls only), messages or static files."""
    flag = getattr(request, "_token_api_call", None)
    if flag is None:
        path = request.path_info
        flag = (
            path.startswith("/api/")
            and request.META.get("HTTP_AUTHORIZATION", "")[:6].lower() == "token "
            and not path.startswith(_SESSION_PATHS)
        )
        request._token_api_call = flag
    return flag


def browser_only(middleware: type) -> type:
    """``middleware``, passed over by API calls authenticated by token (:func:`token_api_call`): on the labelling
    hot path its work is wasted. A subclass, so Django's checks still find the middleware they look for; without
    the session and authentication middleware a cookie cannot authenticate the call, so skipping CSRF is safe."""

    class BrowserOnly(middleware):
        sync_capable, async_capable = True, False

        def __call__(self, request):
            if token_api_call(request):
                return self.get_response(request)
            return super().__call__(request)

        if hasattr(middleware, "process_view"):

            def process_view(self, request, view_func, view_args, view_kwargs):
                if token_api_call(request):
                    return None
                return super().process_view(request, view_func, view_args, view_kwargs)

    BrowserOnly.__name__ = BrowserOnly.__qualname__ = f"BrowserOnly{middleware.__name__}"
    return BrowserOnly


BrowserOnlyWhiteNoiseMiddleware = browser_only(WhiteNoiseMiddleware)
BrowserOnlySessionMiddleware = browser_only(SessionMiddleware)
BrowserOnlyCsrfViewMiddleware = browser_only(CsrfViewMiddleware)
BrowserOnlyAuthenticationMiddleware = browser_only(AuthenticationMiddleware)
BrowserOnlyMessageMiddleware = browser_only(MessageMiddleware)
