"""The lifecycle store's contract on the Mongo wire server, as on the in-memory fake: the
same verdict twice counts once, the lineup reads back as saved, and the handler decides
the same on both."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.events import ChangeKind, ModelChange, ModelRef
from cryptocast_common.lifecycle import LifecyclePolicy, Lineup, current_state, lineup_from
from cryptocast_gateway.store import LIFECYCLE, EventStore, InMemoryEventStore, MongoEventStore
from cryptocast_verifier.handlers import LifecycleDeps, handle_lifecycle
from cryptocast_verifier.lifecycle_store import (
    InMemoryLifecycleStore,
    LifecycleStore,
    MongoLifecycleStore,
)
from tests.factories import candle
from tests.unit.test_verifier_lifecycle import CHALLENGER, CHAMPION, verdict


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"lifecycle_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture(params=["memory", "mongo"])
async def store(
    request: pytest.FixtureRequest, database: AsyncDatabase[dict[str, Any]]
) -> LifecycleStore:
    if request.param == "memory":
        return InMemoryLifecycleStore()
    mongo = MongoLifecycleStore(database)
    await mongo.ensure_indexes()
    return mongo


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


@pytest.fixture(params=["memory", "mongo"])
def events(request: pytest.FixtureRequest, database: AsyncDatabase[dict[str, Any]]) -> EventStore:
    return InMemoryEventStore() if request.param == "memory" else MongoEventStore(database)


def policy(kind: ChangeKind, model: ModelRef, i: int) -> ModelChange:
    return ModelChange(
        symbol="BTC",
        interval="4h",
        kind=kind,
        model=model,
        by="policy",
        reason="",
        decided_at=candle(i).close_time,
    )


async def test_the_gateways_lifecycle_state_follows_the_changes_it_stores(
    events: EventStore,
) -> None:
    closed, promoted = policy("gate_closed", CHAMPION, 1), policy("promoted", CHALLENGER, 5)
    pinned, opened = policy("pinned", CHALLENGER, 6), policy("gate_opened", CHALLENGER, 7)
    await events.upsert([closed])
    assert (await events.lifecycle("BTC", "4h")) == Lineup(
        champion=str(CHAMPION), since=closed.decided_at
    )
    await events.upsert([promoted, opened])
    repeat = current_state("BTC", "4h", Lineup(str(CHAMPION), since=closed.decided_at))
    await events.upsert([promoted, repeat])  # redelivered, and a state told again
    # Stored late by another replica: older than the newest followed, so the history replays.
    await events.upsert([pinned])
    expected = lineup_from([closed, promoted, pinned, opened])
    assert expected is not None and expected.pinned and expected.gate == "open"
    assert await events.lifecycle("BTC", "4h") == expected
    assert await events.lifecycle("ETH", "4h") is None
    # Changes stored before the projection existed: projected on the first read.
    if isinstance(events, InMemoryEventStore):
        events.projections.clear()
    else:
        await events._db[LIFECYCLE].delete_many({})
    assert await events.lifecycle("BTC", "4h") == expected
