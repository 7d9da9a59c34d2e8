"""``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP for services that have no API of
their own.

Container and Kubernetes probes need something to ask: ``/healthz`` answers while the event
loop runs (liveness); ``/readyz`` answers 200 only if the service's readiness check passes,
that is its broker and database can be reached and every consume loop runs, and 503 with the
reason otherwise. ``/metrics`` is the Prometheus exposition of the process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from cryptocast_common import bus

log = logging.getLogger(__name__)
READY_TIMEOUT = 3.0
MAX_HEADERS = 100  # header lines read; the rest of a longer request is not looked at


class DeadLetterCollector(Collector):
    """``cryptocast_dead_lettered_total{queue, reason}``: what this process dead-lettered."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "cryptocast_dead_lettered",
            "Messages this process sent to the dead-letter queue, "
            "by queue and reason (invalid, failed, redelivered)",
            labels=["queue", "reason"],
        )
        for (queue, reason), count in sorted(bus.DEAD_LETTERED.items()):
            family.add_metric([queue, reason], count)
        yield family


_DEAD_LETTERS = CollectorRegistry()
_DEAD_LETTERS.register(DeadLetterCollector())


def metrics_exposition() -> bytes:
    """The process's default registry (a service's own metrics) and its dead letters."""
    return generate_latest(REGISTRY) + generate_latest(_DEAD_LETTERS)


async def readiness(check: Callable[[], Awaitable[None]]) -> tuple[int, dict[str, str]]:
    """Run one readiness check: (HTTP status, JSON body)."""
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT)
    except Exception as error:  # any failure means "not ready"; the reason goes back
        return 503, {"status": "unavailable", "reason": str(error) or type(error).__name__}
    return 200, {"status": "ready"}


class HealthServer:
    """A small HTTP/1.1 server, one request per connection: the health endpoints, and what a
    subclass adds by extending ``route`` (the trainer's ``/train``)."""

    paths_hint = "try /healthz, /readyz or /metrics"  # the 404's message

    def __init__(self, host: str, port: int, check_ready: Callable[[], Awaitable[None]]):
        self.host, self.port, self.check_ready = host, port, check_ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s listening", type(self).__name__, extra={"port": self.port})

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def route(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        """(HTTP status, JSON body), or a body of None for the metrics exposition."""
        if method != "GET":
            return 405, {"status": "error", "message": "only GET"}
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/readyz":
            return await readiness(self.check_ready)
        if path == "/metrics":
            return 200, None
        return 404, {"status": "error", "message": self.paths_hint}

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
            status, body = await self.route(method, path, headers)
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
