"""Store contracts: the same test bodies against the in-memory fakes and against MongoDB
(the nx-27017 wire server)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from cryptocast_gateway.store import InMemoryEventStore, MongoEventStore
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.store import InMemoryVerifierStore, MongoVerifierStore
from tests.factories import STEP, T0, candle, prediction


@pytest.fixture(params=["memory", "mongo"])
async def stores(request: pytest.FixtureRequest, mongo_url: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield InMemoryEventStore(), InMemoryVerifierStore()
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"stores_{id(request)}"]
    events, verifier = MongoEventStore(db), MongoVerifierStore(db)
    await events.ensure_indexes()
    await verifier.ensure_indexes()
    yield events, verifier
    await client.drop_database(db.name)
    await client.close()


async def test_event_store_upserts_idempotently_and_answers_queries(stores: Any) -> None:
    events, _ = stores
    batch = [candle(i, close=100 + i) for i in range(5)] + [prediction(i) for i in range(3)]
    await events.upsert(batch)
    await events.upsert(batch)  # a replay
    got = await events.candles("BTC", "4h", T0 + 4 * STEP, 2)
    assert got == [candle(2, close=102), candle(3, close=103)]
    assert await events.latest_prediction("BTC", "4h") == prediction(2)
    assert await events.latest_prediction("ETH", "4h") is None
    verdicts = [verify(prediction(i), 100.5, 2.0) for i in range(3)]
    await events.upsert(verdicts)
    newest_first = await events.verifications("BTC", "4h", 2)
    assert newest_first == [verdicts[2], verdicts[1]]
    assert newest_first[0].direction_correct is True  # booleans survive the round trip


async def test_verifier_store_keeps_pending_and_closes(stores: Any) -> None:
    _, store = stores
    await store.add_pending(prediction(0))
    await store.add_pending(prediction(0))
    await store.add_pending(prediction(0, symbol="ETH"))
    assert await store.pending_for("BTC", "4h", prediction(0).target_time) == [prediction(0)]
    await store.save_close(candle(1, close=99.0))
    assert await store.close_at("BTC", "4h", candle(1).close_time) == 99.0
    assert await store.close_at("BTC", "4h", candle(5).close_time) is None
    assert await store.forget_closes_before("BTC", "4h", candle(3).close_time) == 1
    assert await store.close_at("BTC", "4h", candle(1).close_time) is None
    assert await store.pending_for("BTC", "4h", prediction(0).target_time) == [prediction(0)]
    assert (
        await store.known_closes("BTC", "4h", [candle(1).close_time, candle(2).close_time]) == set()
    )
    await store.save_close(candle(4, close=98.0))
    assert await store.known_closes("BTC", "4h", [candle(4).close_time]) == {candle(4).close_time}
    assert await store.forget_pending_before("BTC", "4h", candle(3).close_time) == [
        prediction(0).target_time
    ]
    assert await store.pending_for("BTC", "4h", prediction(0).target_time) == []
    assert await store.pending_for("ETH", "4h", prediction(0).target_time) != []
