"""FastAPI dependencies and their ``Annotated`` aliases (``SessionDep``, ``AdminDep``, ...)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from sqlalchemy.orm import Session

from .errors import FieldError
from .runtime import Runtime
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (``create_app(settings)``, else the
    environment's, read once by :func:`get_settings`). ``async``: no thread-pool hop."""
    return getattr(request.app.state, "settings", None) or get_settings()


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; whatever the route did not commit is rolled back.

    Closing runs after the response went out: if it fails (the connection was cut as the
    database stalled, see ``store.StallGuard``), the answer already sent stands and the pool
    discards the connection; raising here would only drop the client's connection.
    """
    session = request.app.state.runtime.sessions()
    try:
        yield session
    finally:
        try:
            session.close()
        except Exception as exc:  # noqa: BLE001 - logged; the response is already out
            log.warning("closing the request's database session failed: %s", exc)


SessionDep = Annotated[Session, Depends(get_session)]


def require_admin(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """``Authorization: Bearer <RECOMMENDER_ADMIN_TOKEN>``; 403 when no token is configured."""
    if not settings.admin_token:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "admin routes are disabled: set RECOMMENDER_ADMIN_TOKEN to enable them",
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.admin_token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong admin token: send Authorization: Bearer <RECOMMENDER_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Annotated[None, Depends(require_admin)]


def check_batch_size(field: str, count: int, settings: Settings) -> None:
    """422 naming ``field`` when a request carries more than ``RECOMMENDER_MAX_BATCH`` entries
    (the request schemas already refuse more than ``schemas.MAX_BATCH``)."""
    if count > settings.max_batch:
        raise FieldError(
            field,
            f"<list of {count} items>",
            f"{field}: at most {settings.max_batch} entries per request "
            f"(RECOMMENDER_MAX_BATCH). Received: {count} entries",
            kind="too_long",
        )
