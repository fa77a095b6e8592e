"""Refusing hostile requests before a view runs, with the API's JSON error shape."""

from django.conf import settings
from django.http import JsonResponse

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
