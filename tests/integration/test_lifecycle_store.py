"""The lifecycle store's contract on the Mongo wire server, as on the in-memory fake: the
same verdict twice counts once, the lineup reads back as saved, and the handler decides
the same on both."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from cryptocast_common.lifecycle import LifecyclePolicy, Lineup
from cryptocast_verifier.handlers import LifecycleDeps, handle_lifecycle
from cryptocast_verifier.lifecycle_store import (
    InMemoryLifecycleStore,
    LifecycleStore,
    MongoLifecycleStore,
)
from tests.factories import candle
from tests.unit.test_verifier_lifecycle import CHALLENGER, CHAMPION, verdict


@pytest.fixture(params=["memory", "mongo"])
async def store(request: pytest.FixtureRequest, mongo_url: str) -> AsyncIterator[LifecycleStore]:
    if request.param == "memory":
        yield InMemoryLifecycleStore()
        return
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"lifecycle_{uuid.uuid4().hex[:8]}"
    mongo = MongoLifecycleStore(client[name])
    await mongo.ensure_indexes()
    yield mongo
    await client.drop_database(name)
    await client.close()


async def test_scores_count_once_and_the_lineup_reads_back(store: LifecycleStore) -> None:
    verdicts = [verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed") for i in range(5)]
    await store.add_scores(verdicts)
    await store.add_scores(verdicts[2:])  # redelivered
    recent = await store.recent("BTC", "4h", str(CHAMPION), 3)
    assert [s.target_time for s in recent] == [v.target_time for v in verdicts[2:]]
    assert len(await store.recent("BTC", "4h", str(CHAMPION), 100)) == 5
    wanted = [verdicts[3].target_time, verdicts[0].target_time, candle(99).close_time]
    found = await store.scores_at("BTC", "4h", str(CHAMPION), wanted)
    assert [s.target_time for s in found] == [verdicts[0].target_time, verdicts[3].target_time]
    assert await store.lineup("BTC", "4h") is None
    saved = Lineup(
        champion=str(CHAMPION),
        gate="open",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        pinned=True,
        blocked=frozenset({"x@1"}),
        challengers=frozenset({str(CHALLENGER)}),
    )
    await store.save_lineup("BTC", "4h", saved)
    await store.save_lineup("BTC", "4h", saved)
    assert await store.lineup("BTC", "4h") == saved


async def test_the_handler_decides_alike_on_either_store(store: LifecycleStore) -> None:
    deps = LifecycleDeps(store, LifecyclePolicy(verdicts=20, min_verdicts=10))
    events = []
    for i in range(12):
        events += [
            verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed"),
            verdict(i, CHALLENGER, "challenger", 0.9 + 0.05 * (i % 2)),
        ]
    changes = await handle_lifecycle(events, deps)
    assert [c.kind for c in changes] == ["promoted", "gate_opened"]
    assert (await store.lineup("BTC", "4h")).champion == str(CHALLENGER)
