"""Rate limit, body limit, API metrics and the stream hub's treatment of slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from cryptocast_gateway.stream import FELL_BEHIND, StreamHub
from tests.factories import candle, prediction


async def started(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    bus = InMemoryBus()
    gateway: Gateway = await bootstrap(CommonSettings(), settings, bus=bus,
                                       store=InMemoryEventStore(), serve_http=False)
    await gateway.start()
    transport = httpx.ASGITransport(app=gateway.app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Origin": "https://cryptocast.example"}) as http:
        yield http
    await bus.close()


@pytest.fixture
async def limited() -> AsyncIterator[httpx.AsyncClient]:
    async for http in started(GatewaySettings(rate_limit_per_minute=5, max_body_bytes=100)):
        yield http


async def test_a_flood_gets_429_with_retry_after(limited: httpx.AsyncClient) -> None:
    answers = [await limited.get("/btc") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].headers["retry-after"] == "12"  # one request per 12 s refills
    assert answers[-1].json()["message"] == "rate limit exceeded; retry after 12 s"
    assert answers[-1].headers["access-control-allow-origin"] == "*"
    assert (await limited.get("/healthz")).status_code == 200  # probes are never limited


async def test_an_oversized_body_is_refused_before_anything_reads_it(
        limited: httpx.AsyncClient) -> None:
    body = {"email": "a@example.com", "coin": "btc", "threshold": 1, "direction": "above",
            "padding": "x" * 200}
    response = await limited.post("/alert", json=body)
    assert response.status_code == 413
    assert response.json()["message"] == "request body larger than 100 bytes"


async def test_zero_turns_the_rate_limit_off() -> None:
    async for http in started(GatewaySettings(rate_limit_per_minute=0)):
        assert {(await http.get("/btc")).status_code for _ in range(50)} == {200}


async def test_metrics_count_requests_by_route() -> None:
    async for http in started(GatewaySettings()):
        await http.get("/btc")
        await http.get("/api/v1/predictions/eth/latest")
        text = (await http.get("/metrics")).text
        assert 'route="/{coin}",status="200"' in text
        assert 'route="/api/v1/predictions/{symbol}/latest",status="404"' in text
        assert "cryptocast_stream_clients 0.0" in text
        assert "cryptocast_dead_lettered" in text


class StuckSocket:
    """A client that never reads: every send waits forever."""

    def __init__(self) -> None:
        self.closed_with: int | None = None

    async def accept(self) -> None:
        pass

    async def send_text(self, _: str) -> None:
        await asyncio.Event().wait()

    async def receive_text(self) -> str:
        await asyncio.Event().wait()
        raise AssertionError

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = code


async def test_a_client_that_falls_behind_is_dropped_without_slowing_anyone() -> None:
    metrics = GatewayMetrics()
    hub = StreamHub(metrics, queue_size=3, heartbeat_seconds=60)
    stuck = StuckSocket()
    serving = asyncio.create_task(hub.serve(stuck, None))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert metrics.stream_clients._value.get() == 1
    for i in range(10):
        hub.publish([prediction(i), candle(i)])  # returns at once however stuck the client
    await asyncio.wait_for(serving, 1)
    assert stuck.closed_with == FELL_BEHIND
    assert metrics.stream_clients._value.get() == 0
    assert metrics.stream_dropped._value.get() == 1
    assert hub.subscribers == set()
