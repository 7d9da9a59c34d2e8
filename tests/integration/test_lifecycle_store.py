"""The lifecycle store's contract on the Mongo wire server, as on the in-memory fake: the
same verdict twice counts once, the lineup reads back as saved, and the handler decides
the same on both; the gateway's projection loses no change written concurrently, and skips
a stored change that no longer decodes."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.documents import to_document
from cryptocast_common.events import ChangeKind, ModelChange, ModelRef, iso_utc
from cryptocast_common.lifecycle import LifecyclePolicy, Lineup, current_state, lineup_from
from cryptocast_gateway.store import (
    LIFECYCLE,
    EventStore,
    InMemoryEventStore,
    MongoEventStore,
    Position,
    Projection,
)
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
    await store.add_scores([])
    await store.add_scores(verdicts + verdicts[:1])  # one delivered twice into the batch
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


async def test_score_writes_are_counted_per_series_beside_the_lineup(store: LifecycleStore) -> None:
    assert await store.state("BTC", "4h") == (None, 0)
    eth = verdict(0, CHAMPION, "champion", 0.5, "closed").model_copy(update={"symbol": "ETH"})
    await store.add_scores([])  # nothing written, nothing counted
    await store.add_scores([verdict(i, CHAMPION, "champion", 0.5, "closed") for i in range(3)])
    assert await store.state("BTC", "4h") == (None, 1)  # scores before any lineup
    lineup = Lineup(champion=str(CHAMPION), since=datetime(2026, 1, 1, tzinfo=UTC))
    await store.save_lineup("BTC", "4h", lineup)
    await store.add_scores([verdict(3, CHALLENGER, "challenger", 0.5), eth])
    await store.save_lineup("BTC", "4h", lineup)  # a lineup saved keeps the count
    assert await store.state("BTC", "4h") == (lineup, 2)
    assert await store.state("ETH", "4h") == (None, 1)
    assert await store.lineup("BTC", "4h") == lineup
    assert await store.states([("BTC", "4h"), ("ETH", "4h"), ("SOL", "4h")]) == {
        ("BTC", "4h"): (lineup, 2),
        ("ETH", "4h"): (None, 1),
        ("SOL", "4h"): (None, 0),
    }
    assert await store.states([]) == {}


async def test_a_verifier_taking_back_over_decides_on_what_the_other_stored(
    store: LifecycleStore,
) -> None:
    here = LifecycleDeps(store, LifecyclePolicy(verdicts=20, min_verdicts=10))
    there = LifecycleDeps(store, LifecyclePolicy(verdicts=20, min_verdicts=10))
    good = [verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed") for i in range(10)]
    [closed] = await handle_lifecycle(good[:5], here)
    assert await handle_lifecycle(good[5:9], there) == []  # no change: the lineup stays
    [opened] = await handle_lifecycle(good[9:], here)
    assert (closed.kind, opened.kind, opened.evidence.n) == ("gate_closed", "gate_opened", 10)


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


class Stale:
    """A store whose read is stale by the time it writes: right after the first ``_projection``
    (or ``_replay``) it reads, another writer (``meanwhile``) stores and projects a change."""

    stale_after = "_projection"
    meanwhile: list[Callable[[], Awaitable[None]]]

    async def _projection(self, symbol: str, interval: str) -> Projection:
        read: Projection = await super()._projection(symbol, interval)  # type: ignore[misc]
        if self.stale_after == "_projection":
            await self._meanwhile()
        return read

    async def _replay(self, symbol: str, interval: str) -> tuple[Lineup | None, Position | None]:
        replayed: tuple[Lineup | None, Position | None] = await super()._replay(symbol, interval)  # type: ignore[misc]
        if self.stale_after == "_replay":
            await self._meanwhile()
        return replayed

    async def _meanwhile(self) -> None:
        while self.meanwhile:
            await self.meanwhile.pop()()


class StaleMemory(Stale, InMemoryEventStore):
    pass


class StaleMongo(Stale, MongoEventStore):
    pass


@pytest.fixture(params=["memory", "mongo"])
def stale(request: pytest.FixtureRequest, database: AsyncDatabase[dict[str, Any]]) -> Stale:
    store = StaleMemory() if request.param == "memory" else StaleMongo(database)
    store.meanwhile = []
    return store


async def test_a_change_projected_meanwhile_is_not_overwritten(stale: Stale) -> None:
    store: EventStore = stale  # type: ignore[assignment]  # a store with a stale read
    closed, promoted = policy("gate_closed", CHAMPION, 1), policy("promoted", CHALLENGER, 5)
    opened = policy("gate_opened", CHALLENGER, 7)
    await store.upsert([closed])
    # Read before another replica stores and projects `gate_opened`, written after.
    stale.meanwhile = [lambda: store.upsert([opened])]
    await store.upsert([promoted])
    assert not stale.meanwhile
    assert await store.lifecycle("BTC", "4h") == lineup_from([closed, promoted, opened])


async def test_a_first_projection_does_not_overwrite_a_newer_one(stale: Stale) -> None:
    store: EventStore = stale  # type: ignore[assignment]  # a store with a stale read
    closed, promoted = policy("gate_closed", CHAMPION, 1), policy("promoted", CHALLENGER, 5)
    await store.upsert([closed])
    await _forget_projections(store)  # stored before the projection existed
    # The history replayed, another replica stores `promoted` and projects it first.
    stale.stale_after, stale.meanwhile = "_replay", [lambda: store.upsert([promoted])]
    assert await store.lifecycle("BTC", "4h") == lineup_from([closed, promoted])
    assert not stale.meanwhile
    assert await store.lifecycle("BTC", "4h") == lineup_from([closed, promoted])


async def test_replicas_storing_changes_at_once_lose_none(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    replicas = [MongoEventStore(database) for _ in range(3)]
    stored = [policy("gate_closed", CHAMPION, 1)]
    await replicas[0].upsert(stored)
    for round_ in range(6):  # each replica blocks a version of its own, all at once
        batch = [
            policy("blocked", ModelRef(name="other", version=f"{round_}.{i}"), 10 * round_ + i)
            for i in range(2, 5)
        ]
        await asyncio.gather(*(r.upsert([c]) for r, c in zip(replicas, batch, strict=True)))
        stored += batch
    expected = lineup_from(stored)
    assert expected is not None and len(expected.blocked) == 18
    assert await replicas[1].lifecycle("BTC", "4h") == expected


async def test_a_stored_change_that_no_longer_decodes_is_skipped(
    database: AsyncDatabase[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    store = MongoEventStore(database)
    closed, promoted = policy("gate_closed", CHAMPION, 1), policy("promoted", CHALLENGER, 5)
    await store.upsert([closed])
    # Stored by the previous release: the id derived from a microsecond decided_at.
    pinned = policy("pinned", CHAMPION, 2)
    stamped = pinned.decided_at + timedelta(microseconds=456)  # MongoDB kept the millisecond
    legacy = to_document(pinned)
    legacy["_id"] = legacy["_id"].replace(iso_utc(pinned.decided_at), iso_utc(stamped))
    assert legacy["_id"] != pinned.event_id
    await database["model_changes"].insert_one(legacy)
    await database[LIFECYCLE].delete_many({})  # so reads and writes replay the history
    with caplog.at_level(logging.WARNING, logger="cryptocast_gateway.store"):
        assert await store.lifecycle("BTC", "4h") == lineup_from([closed])
        await database[LIFECYCLE].delete_many({})
        await store.upsert([promoted])  # replays: the batch is not failed by the old change
        assert await store.lifecycle("BTC", "4h") == lineup_from([closed, promoted])
        assert [c.event_id for c in await store.model_changes("BTC", "4h", 10)] == [
            promoted.event_id,
            closed.event_id,
        ]
    assert legacy["_id"] in caplog.text


async def _forget_projections(store: EventStore) -> None:
    if isinstance(store, InMemoryEventStore):
        store.projections.clear()
    elif isinstance(store, MongoEventStore):
        await store._db[LIFECYCLE].delete_many({})
