"""One error shape for every API error: ``{"message": str, "errors": {field: [str]}}``."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..judgments import JudgmentInvalid
from ..queue import QueueError
from ..schema import SchemaError


def exception_handler(exc, context):
    if isinstance(exc, (JudgmentInvalid, SchemaError)):
        return _error(status.HTTP_400_BAD_REQUEST, "The request has invalid fields.", exc.errors)
    if isinstance(exc, QueueError):
        return _error(status.HTTP_409_CONFLICT, exc.message, {}, code=exc.code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        message = _first_message(errors) or "The request has invalid fields."
        response.data = {"message": message, "errors": _flatten(errors)}
    else:
        detail = data.get("detail", data) if isinstance(data, dict) else data
        response.data = {"message": str(detail), "errors": {}}
    return response


def _error(status_code, message, errors, code=None):
    body = {"message": message, "errors": errors}
    if code:
        body["code"] = code
    return Response(body, status=status_code)


def _flatten(errors, prefix=""):
    """Nested serializer errors → {"spans[0].category": ["..."]}."""
    flat = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            # ListField and ListSerializer report items by integer index: write them as "[i]", the
            # same paths the domain checks use (annotation.judgments), so a client sees one format.
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(_flatten(value, path))
    elif isinstance(errors, list) and errors and all(isinstance(e, (str, exceptions.ErrorDetail)) for e in errors):
        flat[prefix or "non_field_errors"] = [str(e) for e in errors]
    elif isinstance(errors, list):
        for i, value in enumerate(errors):
            if value:
                flat.update(_flatten(value, f"{prefix}[{i}]"))
    else:
        flat[prefix or "non_field_errors"] = [str(errors)]
    return flat


def _first_message(errors):
    for path, messages in _flatten(errors).items():
        if messages:
            # An error of the whole request reads as itself, not "non_field_errors: …".
            return messages[0] if path == "non_field_errors" else f"{path}: {messages[0]}"
    return None
