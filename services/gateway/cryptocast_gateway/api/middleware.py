"""Plain ASGI middleware for the public API: body size, rate limit, metrics and access log.

Written against ASGI directly rather than Starlette's BaseHTTPMiddleware, which costs a
task and a stream per request: these run on every request of the hot path.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptocast_gateway.api.deps import ApiError
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.state import GatewayState

log = logging.getLogger("cryptocast.access")
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


async def send_body(
    send: Send, body: bytes, status: int = 200, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A complete JSON response in two ASGI messages."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, body: dict[str, str], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send_body(send, json.dumps(body).encode(), status, headers)


class BodyLimit:
    """413 for a body larger than ``max_bytes``, declared or streamed, before any handler
    sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send_json(
            send,
            413,
            {"status": "error", "message": f"request body larger than {self.max_bytes} bytes"},
        )


class BodyTooLarge(Exception):
    pass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimit:
    """A token bucket per client address: ``per_minute`` requests a minute, bursts up to
    as many; 429 with Retry-After beyond that."""

    MAX_CLIENTS = 10_000  # forget idle, refilled buckets past this many

    def __init__(
        self, app: ASGIApp, per_minute: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app, self.capacity, self.clock = app, float(per_minute), clock
        self.rate = per_minute / 60.0
        self.buckets: dict[str, _Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.capacity or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        client = scope["client"][0] if scope.get("client") else "unknown"
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self.buckets[client] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / self.rate)
            await send_json(
                send,
                429,
                {"status": "error", "message": f"rate limit exceeded; retry after {wait} s"},
                [(b"retry-after", str(wait).encode())],
            )
            return
        bucket.tokens -= 1
        await self.app(scope, receive, send)

    def _forget_idle(self, now: float) -> None:
        full = now - self.capacity / self.rate
        self.buckets = {k: b for k, b in self.buckets.items() if b.updated > full}


class Observe:
    """Request latency by route into Prometheus, and one structured access-log line."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, access_log: bool) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.observe_request(scope["method"], template, status, elapsed)
            if self.access_log:
                client = scope.get("client")
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": client[0] if client else None,
                    },
                )


class DirectRoutes:
    """GET requests for ``routes`` go straight to their endpoints, before FastAPI's router:
    finding a route among all of the app's and solving its dependencies costs several times
    what these endpoints spend answering from memory (bench/gateway.py). Each endpoint takes
    its path parameter, the gateway state and ``If-None-Match``, and raises ApiError like any
    route; the scope gets the route, endpoint and path parameters, as from the router.
    ``fixed_paths``, the app's paths without parameters, keep precedence over a template that
    also matches them, as in the router, where ``/{coin}`` comes last."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[APIRoute],
        fixed_paths: Collection[str],
        state: GatewayState,
    ) -> None:
        self.app, self.routes, self.fixed_paths, self.state = app, routes, fixed_paths, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] not in self.fixed_paths
        ):
            for route in self.routes:
                if match := route.path_regex.match(scope["path"]):
                    await self._answer(route, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(
        self, route: APIRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope.update(route=route, endpoint=route.endpoint, path_params=params)
        if_none_match = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"if-none-match"
            ),
            None,
        )
        try:
            response = await route.endpoint(*params.values(), self.state, if_none_match)
        except ApiError as error:
            response = error.response()
        await response(scope, receive, send)


class AllowedMethods:
    """405 with an ``Allow`` naming every method of the path, for a method the OpenAPI
    document does not give it. Starlette would name only the first route's methods, and
    ``GET /alert`` would fall through to the catch-all ``/{coin}`` ("unknown coin"): a
    path matching several templates belongs to the one with the fewest parameters.
    ``paths``: the document's paths and their operations."""

    def __init__(self, app: ASGIApp, paths: dict[str, dict[str, object]]) -> None:
        self.app = app
        self.templates = [
            (
                re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"),
                path.count("{"),
                {method.upper() for method in operations},
            )
            for path, operations in paths.items()
        ]

    def allowed(self, path: str) -> set[str] | None:
        matching = [
            (params, methods)
            for template, params, methods in self.templates
            if template.match(path)
        ]
        if not matching:
            return None
        fewest = min(params for params, _ in matching)
        return set().union(*(methods for params, methods in matching if params == fewest))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = self.allowed(scope["path"])
            if allowed is not None and scope["method"] not in allowed:
                await send_json(
                    send,
                    405,
                    {"status": "error", "message": "Method Not Allowed"},
                    [(b"allow", ", ".join(sorted(allowed)).encode())],
                )
                return
        await self.app(scope, receive, send)
