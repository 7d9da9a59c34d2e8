"""The gateway in memory, with one API key, and an HTTP client that reaches it through ASGI
(no socket): fixtures of the gateway's unit tests, registered by ``tests/unit/conftest.py``."""

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore

KEY = {"X-API-Key": "test-key-5b1f"}


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    bus = InMemoryBus()
    settings = GatewaySettings(api_keys=[SecretStr(KEY["X-API-Key"])])
    app = await bootstrap(
        CommonSettings(), settings, bus=bus, store=InMemoryEventStore(), serve_http=False
    )
    await app.start()
    yield app
    await bus.close()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
