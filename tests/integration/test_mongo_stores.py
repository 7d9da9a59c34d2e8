"""Store contracts: the same test bodies against the in-memory fakes and against MongoDB
(the nx-27017 wire server)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from cryptocast_common.documents import to_document
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
    target = [prediction(0).target_time]
    await store.add_pending([prediction(0), prediction(0, model="other")])
    await store.add_pending([prediction(0), prediction(0, symbol="ETH")])  # one again
    assert sorted(p.event_id for p in await store.pending_for("BTC", "4h", target)) == sorted(
        [prediction(0).event_id, prediction(0, model="other").event_id]
    )
    await store.save_closes([candle(1, close=99.0), candle(2, close=97.0)])
    await store.save_closes([candle(1, close=99.0)])  # redelivered
    times = [candle(i).close_time for i in (1, 2, 5)]
    assert await store.closes_at("BTC", "4h", times) == {times[0]: 99.0, times[1]: 97.0}
    assert await store.forget_closes_before("BTC", "4h", candle(2).close_time) == 1
    assert await store.closes_at("BTC", "4h", times) == {times[1]: 97.0}
    assert len(await store.pending_for("BTC", "4h", target)) == 2
    assert await store.forget_pending_before("BTC", "4h", candle(3).close_time) == target * 2
    assert await store.pending_for("BTC", "4h", target) == []
    assert await store.pending_for("ETH", "4h", target) == [prediction(0, symbol="ETH")]


async def test_pages_are_of_one_horizon_and_older_verdicts_count_as_one_step(stores: Any) -> None:
    events, _ = stores
    made = [prediction(1), prediction(1, horizon=2), prediction(1, horizon=3)]
    verdicts = [verify(p, 101.0, 2.0) for p in made]
    # Stored by a release before horizons: the document has no horizon field.
    older = verify(prediction(0), 99.0, 2.0)
    await events.upsert([*made, *verdicts])
    if isinstance(events, MongoEventStore):
        document = to_document(older)
        del document["horizon"]
        await events._db["verifications"].insert_one(document)
    else:
        await events.upsert([older])
    assert await events.latest_prediction("BTC", "4h") == made[0]
    one_step = await events.page("verifications", "BTC", "4h", None, None, None, 10)
    assert one_step == [verdicts[0], older]
    three = await events.page("verifications", "BTC", "4h", None, None, None, 10, horizon=3)
    assert three == [verdicts[2]]
    assert await events.page("predictions", "BTC", "4h", None, None, None, 10, horizon=4) == []
