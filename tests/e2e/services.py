"""The gateway, the verifier and inference running over RabbitMQ and the Mongo wire server,
with an HTTP client on the gateway and a database handle: what every end-to-end test starts
before it replays candles through them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import bootstrap as gateway
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_inference.bootstrap import bootstrap as inference
from cryptocast_inference.settings import InferenceSettings
from cryptocast_verifier.bootstrap import bootstrap as verifier


@dataclass
class Services:
    base: str  # the gateway's URL
    http: httpx.AsyncClient
    db: AsyncDatabase[dict[str, Any]]


@asynccontextmanager
async def running(
    common: CommonSettings,
    gateway_settings: GatewaySettings | None = None,
    **inference_settings: Any,
) -> AsyncIterator[Services]:
    """The three services started (inference with ``inference_settings``, reading history
    from this gateway), stopped afterwards, and the test's database dropped."""
    settings = gateway_settings or GatewaySettings(port=0)
    api = await gateway(common, settings)
    await api.start()
    base = f"http://127.0.0.1:{api.port}"
    started = [
        await verifier(common),
        await inference(
            common,
            InferenceSettings(gateway_url=base, **inference_settings),
        ),
    ]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(common.mongo_url, tz_aware=True)
    http = httpx.AsyncClient(base_url=base, timeout=10)
    try:
        for service in started:
            await service.start()
        yield Services(base, http, mongo[common.mongo_db])
    finally:
        await http.aclose()
        for service in [*started, api]:
            await service.stop()
        await mongo.drop_database(common.mongo_db)
        await mongo.close()
