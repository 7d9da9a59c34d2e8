"""Store contracts: the same test bodies against the in-memory fakes and against MongoDB
(the nx-27017 wire server)."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from pymongo import AsyncMongoClient

from cryptocast_common.documents import to_document
from cryptocast_common.events import iso_utc
from cryptocast_gateway.store import InMemoryEventStore, MongoEventStore
from cryptocast_verifier.handlers import GiveUps, VerifierDeps, handle
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
    target = [("BTC", "4h", prediction(0).target_time)]
    await store.add_pending([prediction(0), prediction(0, model="other")])
    await store.add_pending([prediction(0), prediction(0, symbol="ETH")])  # one again
    assert sorted(p.event_id for p in await store.pending_for(target)) == sorted(
        [prediction(0).event_id, prediction(0, model="other").event_id]
    )
    await store.save_closes([candle(1, close=99.0), candle(2, close=97.0)])
    await store.save_closes([candle(1, close=99.0)])  # redelivered
    times = [("BTC", "4h", candle(i).close_time) for i in (1, 2, 5)]
    assert await store.closes_at(times) == {times[0]: 99.0, times[1]: 97.0}
    assert await store.closes_at([]) == {} and await store.pending_for([]) == []
    assert await store.forget_closes_before("BTC", "4h", candle(2).close_time) == 1
    assert await store.closes_at(times) == {times[1]: 97.0}
    assert len(await store.pending_for(target)) == 2
    assert (
        await store.forget_pending_before("BTC", "4h", candle(3).close_time) == [target[0][2]] * 2
    )
    assert await store.pending_for(target) == []
    assert await store.pending_for([("ETH", "4h", target[0][2])]) == [prediction(0, symbol="ETH")]


async def test_verifier_store_reads_several_series_in_one_request(stores: Any) -> None:
    _, store = stores
    symbols = ("BTC", "ETH", "SOL")
    await store.save_closes([candle(i, close=100.0 + i, symbol=s) for s in symbols for i in (1, 2)])
    await store.save_closes([candle(1, close=50.0, symbol="XRP")])
    wanted = [(s, "4h", candle(i).close_time) for s in symbols for i in (1, 2, 3)]
    wanted.append(("XRP", "1d", candle(1).close_time))  # the same time, another interval
    assert await store.closes_at(wanted) == {
        (s, "4h", candle(i).close_time): 100.0 + i for s in symbols for i in (1, 2)
    }
    await store.add_pending([prediction(i, symbol=s) for s in symbols for i in range(3)])
    targets = [("BTC", "4h", prediction(0).target_time), ("SOL", "4h", prediction(2).target_time)]
    found = await store.pending_for([*targets, ("ETH", "1d", prediction(1).target_time)])
    assert sorted(p.event_id for p in found) == sorted(
        [prediction(0).event_id, prediction(2, symbol="SOL").event_id]
    )


async def test_pending_predictions_of_an_earlier_release_get_their_key_at_start(
    mongo_url: str,
) -> None:
    """Stored without ``waits_for``, they were never found; ``ensure_indexes`` (run at every
    start) gives them the key ``add_pending`` writes, once."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"upgrade_{uuid.uuid4().hex[:8]}"]
    try:
        store = MongoVerifierStore(db)
        old = [prediction(i, symbol=s) for s in ("BTC", "ETH") for i in range(3)]
        await db["verifier_pending"].insert_many([to_document(p) for p in old])
        current = prediction(5)
        await store.add_pending([current])
        keyed = await db["verifier_pending"].find_one({"_id": current.event_id})
        assert keyed is not None
        await store.ensure_indexes()
        for p in old:
            doc = await db["verifier_pending"].find_one({"_id": p.event_id})
            assert doc is not None and doc["waits_for"] == keyed["waits_for"].replace(
                f"BTC:4h:{iso_utc(current.target_time)}",
                f"{p.symbol}:4h:{iso_utc(p.target_time)}",
            )
        await store.ensure_indexes()  # the next start: nothing left to do
        assert await store.add_waits_for() == 0
        # Found by the reads, and verified when their candle comes.
        found = await store.pending_for([("ETH", "4h", old[4].target_time)])
        assert found == [old[4]]
        d = VerifierDeps(store, 2.0, 10, 1000, GiveUps(*_counters()))
        verdicts = await handle([candle(1, symbol="BTC", close=99.0)], d)
        assert [v.prediction_id for v in verdicts] == [old[0].event_id]
    finally:
        await client.drop_database(db.name)
        await client.close()


def _counters() -> tuple[Counter, Counter]:
    registry = CollectorRegistry()
    return Counter("closes", "", registry=registry), Counter("predictions", "", registry=registry)


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
