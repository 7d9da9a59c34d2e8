"""Rate limit, body limit, API metrics and the stream hub's treatment of slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from cryptocast_gateway.stream import TRY_AGAIN_LATER, StreamHub
from tests.factories import candle, prediction
from tests.waiting import eventually


async def started(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    bus = InMemoryBus()
    gateway: Gateway = await bootstrap(
        CommonSettings(), settings, bus=bus, store=InMemoryEventStore(), serve_http=False
    )
    await gateway.start()
    transport = httpx.ASGITransport(app=gateway.app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Origin": "https://cryptocast.example"},
    ) as http:
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
    limited: httpx.AsyncClient,
) -> None:
    body = {
        "email": "a@example.com",
        "coin": "btc",
        "threshold": 1,
        "direction": "above",
        "padding": "x" * 200,
    }
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

    def __init__(self, host: str = "198.51.100.1") -> None:
        self.client = Address(host)
        self.closed_with: int | None = None
        self.reason = ""

    async def accept(self) -> None:
        pass

    async def send_text(self, _: str) -> None:
        await asyncio.Event().wait()

    async def receive_text(self) -> str:
        await asyncio.Event().wait()
        raise AssertionError

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with, self.reason = code, reason


@dataclass
class Address:
    host: str


async def test_stream_clients_are_capped_per_address_and_in_total() -> None:
    metrics = GatewayMetrics()
    hub = StreamHub(
        metrics, queue_size=3, heartbeat_seconds=60, max_clients=3, max_clients_per_address=2
    )
    sockets = [StuckSocket("198.51.100.1") for _ in range(3)]
    sockets += [StuckSocket("198.51.100.2"), StuckSocket("198.51.100.3")]
    serving = [asyncio.create_task(hub.serve(s, None)) for s in sockets]  # type: ignore[arg-type]
    await asyncio.wait(serving, timeout=0.2)
    assert [s.closed_with for s in sockets] == [None, None, TRY_AGAIN_LATER, None, TRY_AGAIN_LATER]
    assert sockets[2].reason == "2 streams from this address already"
    assert sockets[4].reason == "server busy: 3 stream clients already"
    assert metrics.registry.get_sample_value("cryptocast_stream_clients_refused_total") == 2
    serving[0].cancel()  # one client of the first address leaves: room for another
    await asyncio.wait([serving[0]])
    again = StuckSocket("198.51.100.1")
    serving.append(asyncio.create_task(hub.serve(again, None)))  # type: ignore[arg-type]
    await asyncio.wait(serving[-1:], timeout=0.2)
    assert again.closed_with is None and len(hub.subscribers) == 3
    for task in serving:
        task.cancel()
    await asyncio.gather(*serving, return_exceptions=True)
    assert hub.subscribers == set() and not hub.per_address


async def test_behind_a_trusted_proxy_the_limit_counts_the_forwarded_client() -> None:
    settings = GatewaySettings(rate_limit_per_minute=2, trusted_proxies=["203.0.113.0/24"])
    async for http in started(settings):  # the connection comes from 203.0.113.7

        def via(chain: str) -> dict[str, str]:
            return {"X-Forwarded-For": chain}

        statuses = [
            (await http.get("/btc", headers=via(f"192.0.2.{i}, 203.0.113.9"))).status_code
            for i in (1, 1, 1, 2)
        ]
        assert statuses == [200, 200, 429, 200]  # 192.0.2.1 is limited, 192.0.2.2 is not
        spoofed = [
            (await http.get("/btc", headers=via(f"10.9.9.{i}, 192.0.2.2"))).status_code
            for i in range(2)
        ]
        assert spoofed == [200, 429]  # the right-most untrusted hop, whatever precedes it


async def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    async for http in started(GatewaySettings(rate_limit_per_minute=2)):
        statuses = [
            (await http.get("/btc", headers={"X-Forwarded-For": f"192.0.2.{i}"})).status_code
            for i in range(3)
        ]
        assert statuses == [200, 200, 429]


async def test_a_client_that_falls_behind_is_dropped_without_slowing_anyone() -> None:
    metrics = GatewayMetrics()
    hub = StreamHub(
        metrics, queue_size=3, heartbeat_seconds=60, max_clients=10, max_clients_per_address=10
    )
    stuck = StuckSocket()
    serving = asyncio.create_task(hub.serve(stuck, None))  # type: ignore[arg-type]

    async def connected() -> bool:
        return metrics.registry.get_sample_value("cryptocast_stream_clients") == 1

    await eventually(connected, within=1)
    for i in range(10):
        hub.publish([prediction(i), candle(i)])  # returns at once however stuck the client
    await asyncio.wait_for(serving, 1)
    assert stuck.closed_with == TRY_AGAIN_LATER
    assert metrics.registry.get_sample_value("cryptocast_stream_clients") == 0
    assert metrics.registry.get_sample_value("cryptocast_stream_clients_dropped_total") == 1
    assert hub.subscribers == set()
