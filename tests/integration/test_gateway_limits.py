"""The gateway's HTTP server against hostile clients over real sockets: huge headers,
headers sent one byte at a time (slowloris), and more WebSocket clients than allowed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from cryptocast_gateway.stream import TRY_AGAIN_LATER
from tests.waiting import eventually

HEADER_TIMEOUT = 1.0


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    bus = InMemoryBus()
    settings = GatewaySettings(
        port=0,
        header_timeout_seconds=HEADER_TIMEOUT,
        stream_max_clients_per_address=2,
        access_log=False,
    )
    service = await bootstrap(CommonSettings(), settings, bus=bus, store=InMemoryEventStore())
    await service.start()
    yield service
    await service.stop()
    await bus.close()


async def answer_to(port: int, head: bytes) -> bytes:
    """Send ``head`` as fast as the server takes it; what it answers before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    with contextlib.suppress(ConnectionError):  # it may close while we still write
        writer.write(head)
        await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def still_serving(port: int) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200


async def test_a_megabyte_of_headers_is_refused_with_431(gateway: Gateway) -> None:
    answer = await answer_to(
        gateway.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"", answer[:100]  # or reset
    assert b"a" * 100 not in answer
    await still_serving(gateway.port)
    normal = await answer_to(
        gateway.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"X-Ok: "
        + b"b" * 8000
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert normal.startswith(b"HTTP/1.1 200 ")


async def test_a_client_trickling_its_headers_is_disconnected(gateway: Gateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    started = time.monotonic()
    answer = b""
    trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
    for byte in trickle:  # one byte every 0.1 s, waiting on the socket meanwhile
        writer.write(bytes([byte]))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            answer = await asyncio.wait_for(reader.read(), 0.1)
            break
    elapsed = time.monotonic() - started
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert HEADER_TIMEOUT <= elapsed < HEADER_TIMEOUT + 1.5
    await still_serving(gateway.port)


async def test_a_third_stream_from_one_address_is_refused_with_1013(gateway: Gateway) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/api/v1/stream"
    async with websockets.connect(url), websockets.connect(url), websockets.connect(url) as third:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(third.recv(), 5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            TRY_AGAIN_LATER,
            "2 streams from this address already",
        )
    async with websockets.connect(url):  # the others left: room again

        async def only_this_one() -> bool:
            return gateway.state.hub.per_address == {"127.0.0.1": 1}

        await eventually(only_this_one, within=5)
