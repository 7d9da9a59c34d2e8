"""The trainer's small HTTP server: ``POST /train`` (X-API-Key), ``GET /train`` (the last
run), ``/healthz``, ``/readyz`` and ``/metrics`` as every service serves them."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import SecretStr

from cryptocast_common.health import READY_TIMEOUT, metrics_exposition, readiness

log = logging.getLogger(__name__)
MAX_HEADERS = 100


def key_accepted(offered: str | None, keys: Sequence[SecretStr]) -> bool:
    """The gateway's rule: one of the configured keys, every key compared in constant time."""
    given = (offered or "").encode()
    valid = [hmac.compare_digest(given, k.get_secret_value().encode()) for k in keys]
    return bool(offered) and any(valid)


class TrainerHttp:
    def __init__(
        self,
        host: str,
        port: int,
        api_keys: Sequence[SecretStr],
        trigger: Callable[[], tuple[int, dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
        check_ready: Callable[[], Awaitable[None]],
    ) -> None:
        self.host, self.port, self.api_keys = host, port, api_keys
        self.trigger, self.status, self.check_ready = trigger, status, check_ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("trainer HTTP listening", extra={"port": self.port})

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _route(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        path = path.split("?", 1)[0]
        if path == "/train":
            if method == "GET":
                return 200, self.status()
            if method != "POST":
                return 405, {"status": "error", "message": "POST /train starts a run"}
            if not key_accepted(headers.get("x-api-key"), self.api_keys):
                return 401, {"status": "error", "message": "a valid X-API-Key header is required"}
            return self.trigger()
        if method != "GET":
            return 405, {"status": "error", "message": "only GET here"}
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/readyz":
            return await readiness(self.check_ready)
        if path == "/metrics":
            return 200, None
        return 404, {"status": "error", "message": "try POST /train, /healthz, /readyz, /metrics"}

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), READY_TIMEOUT)
            headers: dict[str, str] = {}
            for _ in range(MAX_HEADERS):
                line = await asyncio.wait_for(reader.readline(), READY_TIMEOUT)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            method, path, *_ = request.decode("latin-1").split() or ["", ""]
            status, body = await self._route(method, path, headers)
            if body is None:
                payload, content_type = metrics_exposition(), "text/plain; version=0.0.4"
            else:
                payload, content_type = json.dumps(body).encode(), "application/json"
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a client that goes away or sends garbage gets nothing
        finally:
            writer.close()
