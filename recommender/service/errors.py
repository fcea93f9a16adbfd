"""Error bodies and exception handlers.

Every 4xx names what was wrong: ``{"detail": [{"field", "value", "message", "type"}]}`` for
input errors, where ``message`` reads like ``rating must be in [1, 5]. Received: rating=7``.
A database that cannot be reached answers 503; the request's transaction is rolled back.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from recommender.store import NotFoundError

from .schemas import BODY_TAGS

log = logging.getLogger(__name__)

_MAX_VALUE_CHARS = 200


class FieldError(ValueError):
    """Bad input found after parsing (e.g. a rating outside the configured scale)."""

    def __init__(self, field: str, value: Any, message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message
        self.kind = kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "value": printable(self.value),
            "message": self.message,
            "type": self.kind,
        }


def field_name(loc: Sequence[str | int]) -> str:
    """``("body", "batch", "ratings", 3, "rating")`` -> ``"ratings[3].rating"``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        source = parts.pop(0)
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


def printable(value: Any) -> Any:
    """The offending value, made JSON-safe and short (NaN -> "nan", long lists summarized)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return f"<list of {len(value)} items>" if len(value) > 10 else [printable(v) for v in value]
    if isinstance(value, dict):
        if len(value) > 10:
            return f"<object with {len(value)} fields>"
        return {str(k): printable(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[:_MAX_VALUE_CHARS] + f"... ({len(value)} characters)"
    if isinstance(value, bytes):
        return printable(value.decode("utf-8", errors="replace"))
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return printable(repr(value))


def _short_value(value: Any) -> str:
    shown = printable(value)
    return repr(shown) if isinstance(shown, str) and not shown.startswith("<") else str(shown)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        field = field_name(error.get("loc", ()))
        value = error.get("input")
        message = error.get("msg", "invalid value")
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


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": validation_errors(exc)})


async def _on_field_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldError)
    return JSONResponse(status_code=422, content={"detail": [exc.as_dict()]})


async def _on_not_found(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    return JSONResponse(
        status_code=503,
        content={"detail": f"database unavailable, nothing was written: {reason}"},
        headers={"Retry-After": "1"},
    )


async def _on_dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        return await _on_database_unavailable(request, exc)
    log.exception("database error during %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal database error"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(FieldError, _on_field_error)
    app.add_exception_handler(NotFoundError, _on_not_found)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    app.add_exception_handler(InterfaceError, _on_database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _on_database_unavailable)
    app.add_exception_handler(DBAPIError, _on_dbapi_error)
