"""Pure ASGI middleware (no per-request task overhead): API keys, body-size limit, request
metrics."""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PROBLEM_MEDIA_TYPE, problem, problem_bytes
from .metrics import ServiceMetrics


async def send_problem(
    send: Send, scope: Scope, status: int, detail: str, *, close: bool = False
) -> None:
    """Answer a problem-details body (:mod:`errors`) with ``status`` from a middleware,
    before the app runs (``close``: ask the client to drop the connection, e.g. after an
    unread body)."""
    body = problem_bytes(problem(status, detail, scope.get("path")))
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def route_path(scope: Scope) -> str:
    """The request's path within the app: ``scope["path"]`` without the ``root_path`` it is
    mounted under (behind a proxy that strips nothing, e.g. ``--root-path /api``), as the
    router matches it."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):]
    return path


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, before the app parses them.

    A declared ``Content-Length`` over the limit is refused before reading anything; a
    streamed (chunked) body is cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send, scope, declared)
                    return
                break

        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["exceeded"] = True
                    raise BodyTooLargeError(state["received"])
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                # The app turned the aborted read into some error response: answer 413.
                if message["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await self._reject(send, scope, state["received"])
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLargeError:
            if not state["started"]:
                await self._reject(send, scope, state["received"])

    async def _reject(self, send: Send, scope: Scope, size: int) -> None:
        await send_problem(
            send,
            scope,
            413,
            f"request body is too large: the limit is {self.max_bytes} bytes "
            f"(RECOMMENDER_MAX_BODY_BYTES). Received: at least {size} bytes",
            close=True,
        )


class BodyTooLargeError(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"request body over the limit. Received: {size} bytes")
        self.size = size


class MetricsMiddleware:
    """Observe each request's latency under its route template (``/v1/users/{user_id}/...``).

    Label values come from finite sets (route templates, status codes, the standard
    methods; any other method is ``OTHER``), so clients cannot grow the series without bound.
    The labelled histogram children are cached: ``labels()`` validates and locks on every
    call, a measurable share of a cheap request.
    """

    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"] if scope["method"] in self.METHODS else "OTHER"
            key = (method, template, status["code"])
            child = self._children.get(key)
            if child is None:
                child = self.metrics.request_duration.labels(
                    method=method, route=template, status=str(status["code"])
                )
                self._children[key] = child
            child.observe(time.perf_counter() - start)


class ApiKeyMiddleware:
    """When ``RECOMMENDER_API_KEYS`` is set, every ``/v1`` route but ``/v1/admin`` needs one
    of the keys in ``X-API-Key``; a missing or unknown key answers 401.

    A middleware rather than a FastAPI dependency: a dependency is solved on every request
    of every guarded route (~30 us each, a tenth of a recommendation's server time), and
    ``create_app`` installs this one only when keys are configured, and declares the scheme in
    the OpenAPI schema on the operations it guards.
    """

    PREFIX = "/v1/"
    EXEMPT = ("/v1/admin/",)  # admin routes have their own bearer token

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("ApiKeyMiddleware needs at least one key. Received: keys=[]")
        self.app = app
        self.keys = [key.encode() for key in keys]

    @classmethod
    def guards(cls, path: str) -> bool:
        """Whether requests to ``path`` need a key."""
        return path.startswith(cls.PREFIX) and not path.startswith(cls.EXEMPT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guards(route_path(scope)):
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"x-api-key"), b"")
        # Compare with every key (no early exit): the time taken says nothing about which.
        matches = [hmac.compare_digest(given, key) for key in self.keys]
        if any(matches):
            await self.app(scope, receive, send)
            return
        await send_problem(
            send,
            scope,
            401,
            "missing or unknown API key: send X-API-Key (see RECOMMENDER_API_KEYS)",
        )
