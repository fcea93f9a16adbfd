"""Error bodies and exception handlers: one body for every error status.

Every 4xx and 5xx answers RFC 9457 problem details (``application/problem+json``)::

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "rating: rating must be in [1, 5] ... Received: rating=7",
     "instance": "/v1/ratings",
     "errors": [{"field": "rating", "value": 7, "message": "...", "type": "out_of_scale"}]}

``errors`` (input errors, 422 only) names each bad field, the value received and what was
wrong, e.g. ``rating must be in [1, 5]. Received: rating=7``. A database that cannot be reached
answers 503; the request's transaction is rolled back. The middlewares (401, 413) answer the
same body through :func:`problem_bytes`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.store import NotFoundError

from .schemas import BODY_TAGS
from .validation import FieldError, printable

_MAX_VALUE_CHARS = 200  # longer strings are cut in messages (as printable cuts values)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldError",
    "ProblemResponse",
    "field_name",
    "install_error_handlers",
    "printable",
    "problem",
    "problem_bytes",
    "validation_errors",
]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# How many field messages the summary in "detail" repeats (all of them are in "errors").
_DETAIL_ERRORS = 3


def problem(
    status: int,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A problem-details object (RFC 9457). ``type`` is ``about:blank``: the status says what
    kind of problem it is, ``detail`` says what happened this time."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return body


def problem_bytes(body: dict[str, Any]) -> bytes:
    """The JSON text of a problem. Values went through :func:`printable`; anything that
    still cannot be encoded (a lone surrogate in a path) is written escaped, never a 500."""
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return problem_bytes(content)


def field_name(loc: Sequence[str | int]) -> str:
    """``("body", "batch", "ratings", 3, "rating")`` -> ``"ratings[3].rating"``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        source = str(parts.pop(0))
        if source != "body" and not parts:
            return source
    name = ""
    for part in parts:
        if part in BODY_TAGS:
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def _short_value(value: Any) -> str:
    """The value as a message shows it: strings quoted by ``repr`` (which escapes NUL and lone
    surrogates itself, so they appear once as ``\\x00`` or ``\\ud800``), long ones cut."""
    if isinstance(value, str):
        if len(value) > _MAX_VALUE_CHARS:
            return f"{value[:_MAX_VALUE_CHARS]!r}... ({len(value)} characters)"
        return repr(value)
    shown = printable(value)
    return repr(shown) if isinstance(shown, str) and not shown.startswith("<") else str(shown)


def _json_error(error: dict[str, Any], document: Any) -> dict[str, Any]:
    """Where a body that is not JSON breaks: line, column and the text around it."""
    position = error["loc"][-1] if isinstance(error["loc"][-1], int) else 0
    reason = (error.get("ctx") or {}).get("error", "invalid JSON")
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    if not isinstance(text, str):
        text = ""
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    near = text[max(0, position - 20) : position + 20]
    return {
        "field": "body",
        "value": printable(near),
        "message": f"body is not valid JSON: {reason} at line {line} column {column} "
        f"(character {position + 1}). Received near there: {_short_value(near)}",
        "type": "json_invalid",
    }


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            out.append(_json_error(error, exc.body))
            continue
        field = field_name(error.get("loc", ()))
        value = error.get("input")
        ctx = error.get("ctx") or {}
        if "subfield" in ctx:  # a place inside a JSON object (validation.JsonObject)
            field = f"{field}.{ctx['subfield']}"
            value = ctx["subvalue"]
        message = error.get("msg", "invalid value")
        if error.get("type") == "string_unicode":  # pydantic's words for a lone surrogate
            message = "must not contain a lone UTF-16 surrogate: it has no UTF-8 encoding"
        if error.get("type") == "missing":
            text = f"{field} is required"
        else:
            leaf = field.rsplit(".", 1)[-1]
            text = f"{field}: {message}. Received: {leaf}={_short_value(value)}"
        out.append(
            {
                "field": field,
                "value": None if error.get("type") == "missing" else printable(value),
                "message": text,
                "type": error.get("type", "value_error"),
            }
        )
    return out


def invalid_input(request: Request, errors: list[dict[str, Any]]) -> ProblemResponse:
    """422 with every field error, the first few repeated in ``detail``."""
    messages = [error["message"] for error in errors]
    detail = "; ".join(messages[:_DETAIL_ERRORS])
    if len(messages) > _DETAIL_ERRORS:
        detail += f"; and {len(messages) - _DETAIL_ERRORS} more (see errors)"
    return ProblemResponse(
        problem(422, detail or "invalid input", request.url.path, errors), status_code=422
    )


async def _on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    return invalid_input(request, validation_errors(exc))


async def _on_field_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, FieldError)
    return invalid_input(request, [exc.as_dict()])


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    """HTTPException (routes, and Starlette's own 404/405) as a problem, headers kept."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code < 400:  # e.g. 304: no body
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(printable(exc.detail))
    return ProblemResponse(
        problem(exc.status_code, detail, request.url.path),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _on_not_found(request: Request, exc: Exception) -> ProblemResponse:
    return ProblemResponse(problem(404, str(exc), request.url.path), status_code=404)


DATABASE_UNAVAILABLE = (
    "database unavailable (unreachable, or no answer within RECOMMENDER_DB_TIMEOUT_S); the "
    "request was rolled back: retry it (writes are idempotent); the server log has the cause"
)


async def _on_database_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    # The driver's message names the database host and port: the log has it, clients do not.
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return ProblemResponse(
        problem(503, DATABASE_UNAVAILABLE, request.url.path),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _on_dbapi_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        return await _on_database_unavailable(request, exc)
    log.exception("database error during %s %s", request.method, request.url.path)
    return ProblemResponse(
        problem(500, "internal database error", request.url.path), status_code=500
    )


async def _on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    """Anything else: a problem body rather than Starlette's plain-text 500 (the exception
    is still logged and re-raised by Starlette's error middleware)."""
    return ProblemResponse(problem(500, "internal server error", request.url.path), 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(FieldError, _on_field_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(NotFoundError, _on_not_found)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    app.add_exception_handler(InterfaceError, _on_database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _on_database_unavailable)
    app.add_exception_handler(DBAPIError, _on_dbapi_error)
    app.add_exception_handler(Exception, _on_unexpected)
