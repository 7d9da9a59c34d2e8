"""The trainer end to end: candles stored by the gateway (on nx-27017) read through its REST
API, a version fitted and validated, registered in the MongoDB/GridFS registry, announced on
the real RabbitMQ; a run cancelled mid-way leaves nothing in the registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.bus import InMemoryBus
from cryptocast_common.events import Event, ModelChange
from cryptocast_common.registry import MongoModelRegistry
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway
from cryptocast_gateway.bootstrap import bootstrap as gateway_bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import MongoEventStore
from cryptocast_inference.series import read_candles
from cryptocast_inference.settings import SHIPPED_MODEL
from cryptocast_trainer.bootstrap import bootstrap
from cryptocast_trainer.settings import TrainerSettings
from cryptocast_trainer.sources import GatewayCandleSource

DATA = Path(__file__).parents[2] / "services/ingestor/cryptocast_ingestor/data/binance_4h"
SYMBOLS = ["BTC", "ETH", "SOL"]
CANDLES = 2400  # per symbol: more than two pages of the gateway's 1,000


@pytest.fixture
async def settings(common: CommonSettings) -> CommonSettings:
    return common.model_copy(update={"symbols": SYMBOLS})


@pytest.fixture
async def gateway(settings: CommonSettings) -> AsyncIterator[Gateway]:
    """The gateway's REST API over its Mongo store, holding the newest bundled candles."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    store = MongoEventStore(client[settings.mongo_db])
    await store.ensure_indexes()
    for symbol in SYMBOLS:
        candles = read_candles(DATA / f"{symbol}_4h.csv.gz", symbol, "4h")[-CANDLES:]
        await store.upsert(candles)
    gateway = await gateway_bootstrap(
        settings, GatewaySettings(), bus=InMemoryBus(), store=store, serve_http=False
    )
    yield gateway
    await client.close()


@pytest.fixture
async def candles_client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_gateway_source_pages_through_every_stored_candle(
    candles_client: httpx.AsyncClient,
) -> None:
    series = await GatewayCandleSource(candles_client).series("ETH", "4h", CANDLES + 500)
    expected = read_candles(DATA / "ETH_4h.csv.gz", "ETH", "4h")[-CANDLES:]
    assert len(series) == CANDLES
    assert series.times[0] == expected[0].open_time.timestamp()
    assert series.closes[-1] == expected[-1].close


async def test_train_register_and_announce(
    settings: CommonSettings, candles_client: httpx.AsyncClient
) -> None:
    observer = await AmqpBus.connect(settings.amqp_url or "", settings)
    cards: list[ModelChange] = []
    got_all = asyncio.Event()

    async def collect(events: list[Event]) -> list[Event]:
        cards.extend(e for e in events if isinstance(e, ModelChange) and e.by == "trainer")
        if len(cards) >= len(SYMBOLS):
            got_all.set()
        return []

    await observer.consume(settings.queue_for("contract"), ["model_change.*.4h"], collect)
    trainer = await bootstrap(
        settings,
        TrainerSettings(history_candles=CANDLES, validation_candles=180, schedule="off", port=0),
        source=GatewayCandleSource(candles_client),
    )
    await trainer.start()
    try:
        result = await trainer.run_once()
        async with asyncio.timeout(20):
            await got_all.wait()
    finally:
        await trainer.stop()
        await observer.close()

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        registry = MongoModelRegistry(client[settings.mongo_db])
        version, files = await registry.get(result.version.ref)  # hashes checked
        refs = {v.ref: v.status for v in await registry.versions()}
    finally:
        await client.close()
    assert refs[result.version.ref] == "challenger" and refs[SHIPPED_MODEL] == "bundled"
    assert version.data["source"].startswith("gateway")
    assert version.data["candles"] == dict.fromkeys(SYMBOLS, CANDLES)
    assert version.metrics["pooled"]["model"]["n"] == 3 * 180
    assert json.loads(files["model.json"])["version"] == version.version
    assert sorted(c.symbol for c in cards) == SYMBOLS
    assert {(c.kind, str(c.model)) for c in cards} == {("registered", result.version.ref)}


async def test_a_run_cancelled_mid_register_leaves_nothing(
    settings: CommonSettings, candles_client: httpx.AsyncClient
) -> None:
    trainer = await bootstrap(
        settings,
        TrainerSettings(
            history_candles=CANDLES,
            validation_candles=180,
            schedule="off",
            port=0,
            seed_bundled=False,
        ),
        source=GatewayCandleSource(candles_client),
    )
    registry = trainer.deps.registry
    assert isinstance(registry, MongoModelRegistry)
    reached = asyncio.Event()
    upload = registry._bucket.upload_from_stream_with_id

    async def stuck_upload(*args: Any, **kwargs: Any) -> None:
        await upload(*args, **kwargs)
        reached.set()
        await asyncio.Event().wait()  # SIGTERM arrives while the file is being stored

    registry._bucket.upload_from_stream_with_id = stuck_upload  # type: ignore[method-assign]
    await trainer.start()
    assert trainer.trigger()[0] == 202
    async with asyncio.timeout(60):
        await reached.wait()
    await trainer.stop()
    assert trainer.last["status"] == "cancelled"

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        fresh = MongoModelRegistry(client[settings.mongo_db])
        assert await fresh.versions() == []
        assert [f async for f in fresh._bucket.find({})] == []
    finally:
        await client.close()
