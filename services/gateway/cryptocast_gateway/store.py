"""Every event in MongoDB, one collection per type, upserted by event id."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from cryptocast_common.documents import from_document, to_document
from cryptocast_common.events import Candle, Event, ModelChange, Prediction, Verification
from cryptocast_common.lifecycle import Lineup, follow, lineup_from
from cryptocast_common.lifecycle import from_document as lineup_document
from cryptocast_common.lifecycle import to_document as lineup_fields

COLLECTIONS = {
    "candle": "candles",
    "prediction": "predictions",
    "verification": "verifications",
    "model": "models",
    "model_change": "model_changes",
    "coin_added": "coins",
}
Position = tuple[datetime, str]  # (time, event id): where a page ends, for the next one
HISTORY_READ = 1000  # changes replayed when one is stored out of order
LIFECYCLE = "model_lifecycle"  # the lifecycle state per symbol, projected from model_changes
# Writes of a projection tried before giving up (each after re-reading what another writer,
# a gateway replica or a redelivered batch, wrote in between).
PROJECT_ATTEMPTS = 8
# The time each collection is ordered by for "latest" and range queries.
TIME_FIELD = {
    "candles": "close_time",
    "predictions": "target_time",
    "verifications": "target_time",
    "models": "trained_at",
    "model_changes": "decided_at",
    "coins": "added_at",
}
# What the API serves: the champion's forecasts (and those from before roles existed).
SERVED_ROLES = ("champion", None)
# The collections whose events look some candles ahead, so that a page is of one horizon.
AHEAD = frozenset({"predictions", "verifications"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageQuery:
    """One page of a collection: newest first by time then id, times in [start, end],
    strictly after ``before`` in that order (keyset pagination: stable while new events
    arrive); with ``served``, only predictions or verdicts of what was served (the
    champion's). Predictions and verdicts are those ``horizon`` candles ahead."""

    collection: str
    symbol: str
    interval: str
    start: datetime | None
    end: datetime | None
    before: Position | None
    limit: int
    served: bool = False
    horizon: int = 1

    @property
    def time_field(self) -> str:
        return TIME_FIELD[self.collection]


class EventStore(ABC):
    """The gateway's events. A store answers ``PageQuery``s; every read is one of them."""

    @abstractmethod
    async def upsert(self, events: Sequence[Event]) -> None: ...

    @abstractmethod
    async def find(self, query: PageQuery) -> list[Event]: ...

    @abstractmethod
    async def ping(self) -> None: ...

    @abstractmethod
    async def coins_added(self) -> list[str]:
        """The symbols of the coins added at run time, sorted."""

    async def page(
        self,
        collection: str,
        symbol: str,
        interval: str,
        start: datetime | None,
        end: datetime | None,
        before: Position | None,
        limit: int,
        served: bool = False,
        horizon: int = 1,
    ) -> list[Event]:
        """``find`` with the query's fields as arguments."""
        query = PageQuery(collection, symbol, interval, start, end, before, limit, served, horizon)
        return await self.find(query)

    async def latest_prediction(self, symbol: str, interval: str) -> Prediction | None:
        """The newest served prediction."""
        found = await self.page("predictions", symbol, interval, None, None, None, 1, True)
        return found[0] if found else None  # type: ignore[return-value]  # the predictions collection

    async def verifications(self, symbol: str, interval: str, limit: int) -> list[Verification]:
        """Verdicts on served predictions."""
        return await self.page(
            "verifications",
            symbol,
            interval,
            None,
            None,
            None,
            limit,  # type: ignore[return-value]  # the verifications collection
            True,
        )

    async def model_changes(self, symbol: str, interval: str, limit: int) -> list[ModelChange]:
        """The lifecycle's changes on a symbol, newest first."""
        return await self.page("model_changes", symbol, interval, None, None, None, limit)  # type: ignore[return-value]  # the model_changes collection

    async def candles(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        newest = await self.page("candles", symbol, interval, None, end, None, limit)
        return list(reversed(newest))  # type: ignore[arg-type]  # the candles collection

    # The lifecycle state per symbol, kept as the changes are stored (one read per request,
    # shared by every gateway replica): the projection's lineup, and the position of the
    # newest change it follows. Replicas and redelivered batches write it concurrently, so
    # a write only applies over the very projection it was computed from (optimistic
    # concurrency): otherwise it is computed again from what is stored now.

    async def lifecycle(self, symbol: str, interval: str) -> Lineup | None:
        """The symbol's lineup as the stored changes leave it; None before the first."""
        lineup: Lineup | None = None
        for _ in range(PROJECT_ATTEMPTS):
            read = await self._projection(symbol, interval)
            if read.newest is not None:
                return read.lineup
            # Not projected yet (changes stored before the projection existed): projected
            # now, unless another writer projected it meanwhile, whose projection then wins.
            lineup, newest = await self._replay(symbol, interval)
            if newest is None or await self._project(symbol, interval, lineup, newest, read):
                return lineup
        return lineup

    async def _replay(self, symbol: str, interval: str) -> tuple[Lineup | None, Position | None]:
        """The lineup the stored changes lead to, and the newest one's position. A change
        that no longer decodes (stored by an older release) is left out: ``find`` skips it
        with a warning."""
        history = await self.model_changes(symbol, interval, HISTORY_READ)
        if not history:
            return None, None
        return lineup_from(list(reversed(history))), _position(history[0])

    async def _follow(self, events: Sequence[Event]) -> None:
        """Bring each symbol's projection up to the policy's changes just stored. The first
        projection of a symbol, or a change older than its newest (stored late, by another
        replica), replays the stored history instead. A write that finds the projection
        changed since it was read (another writer) starts over from the new one."""
        new: dict[tuple[str, str], list[ModelChange]] = defaultdict(list)
        for event in events:
            if isinstance(event, ModelChange) and event.by == "policy":
                new[(event.symbol, event.interval)].append(event)
        for series, changes in new.items():
            changes.sort(key=_position)
            for _ in range(PROJECT_ATTEMPTS):
                read = await self._projection(*series)
                lineup, newest = read.lineup, read.newest
                if newest is None or _position(changes[0]) < newest:
                    lineup, newest = await self._replay(*series)
                for change in changes:
                    if newest is None or _position(change) > newest:
                        lineup, newest = follow(lineup, change), _position(change)
                if newest is None or (lineup, newest) == (read.lineup, read.newest):
                    break  # nothing new to write (a redelivery)
                if await self._project(*series, lineup, newest, read):
                    break
            else:
                raise ProjectionContention(
                    f"the lifecycle projection of {series[0]} {series[1]} changed under "
                    f"each of {PROJECT_ATTEMPTS} writes"
                )

    @abstractmethod
    async def _projection(self, symbol: str, interval: str) -> Projection:
        """The stored projection as read now (``newest`` None: there is none)."""

    @abstractmethod
    async def _project(
        self, symbol: str, interval: str, lineup: Lineup | None, newest: Position, read: Projection
    ) -> bool:
        """Store the projection if the stored one is still ``read`` (none: if there is still
        none); False, writing nothing, if another writer changed it since."""


@dataclass(frozen=True)
class Projection:
    """A symbol's stored projection: the lineup, the position of the newest change it
    follows (None: no projection stored), and its revision, counted up by each write (None:
    written by an older release, without one)."""

    lineup: Lineup | None = None
    newest: Position | None = None
    revision: int | None = None


class ProjectionContention(RuntimeError):
    """The projection kept changing under every write: the batch is retried."""


def _position(change: ModelChange) -> Position:
    return change.decided_at, change.event_id


class MongoEventStore(EventStore):
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def ensure_indexes(self) -> None:
        for name, time_field in TIME_FIELD.items():
            await self._db[name].create_index([("symbol", 1), ("interval", 1), (time_field, -1)])
        await self._db["verifications"].create_index("prediction_id")

    async def upsert(self, events: Sequence[Event]) -> None:
        """One unordered bulk write per collection; replaying the same events changes nothing."""
        grouped: dict[str, list[ReplaceOne[dict[str, Any]]]] = defaultdict(list)
        for event in events:
            doc = to_document(event)
            grouped[COLLECTIONS[event.type]].append(
                ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)
            )
        for collection, operations in grouped.items():
            await self._db[collection].bulk_write(operations, ordered=False)
        await self._follow(events)

    async def _projection(self, symbol: str, interval: str) -> Projection:
        doc = await self._db[LIFECYCLE].find_one({"_id": f"{symbol}:{interval}"})
        if doc is None:
            return Projection()
        lineup = None if doc["lineup"] is None else lineup_document(doc["lineup"])
        return Projection(lineup, (doc["decided_at"], doc["event_id"]), doc.get("revision"))

    async def _project(
        self, symbol: str, interval: str, lineup: Lineup | None, newest: Position, read: Projection
    ) -> bool:
        key = f"{symbol}:{interval}"
        doc = {
            "_id": key,  # always in the document: nx-27017 upserts by the document's own _id
            "lineup": None if lineup is None else lineup_fields(lineup),
            "decided_at": newest[0],
            "event_id": newest[1],
            "revision": (read.revision or 0) + 1,
        }
        if read.newest is None:  # there was none: only if there still is none
            try:
                await self._db[LIFECYCLE].insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        # Only over the projection read: same newest change and same revision (a replay can
        # rewrite the lineup at the same newest change).
        revision = {"$exists": False} if read.revision is None else read.revision
        match = {
            "_id": key,
            "decided_at": read.newest[0],
            "event_id": read.newest[1],
            "revision": revision,
        }
        result = await self._db[LIFECYCLE].replace_one(match, doc)
        return result.matched_count == 1

    async def find(self, query: PageQuery) -> list[Event]:
        time_field = query.time_field
        match: dict[str, Any] = {"symbol": query.symbol, "interval": query.interval}
        if query.served:
            match["role"] = {"$in": list(SERVED_ROLES)}
        if query.collection in AHEAD:  # verdicts stored before horizons have none: one step
            match["horizon"] = {"$in": [1, None]} if query.horizon == 1 else query.horizon
        bounds = {op: at for op, at in (("$gte", query.start), ("$lte", query.end)) if at}
        if bounds:
            match[time_field] = bounds
        if query.before is not None:
            at, event_id = query.before
            match = {
                "$and": [
                    match,
                    {
                        "$or": [
                            {time_field: {"$lt": at}},
                            {time_field: at, "_id": {"$lt": event_id}},
                        ]
                    },
                ]
            }
        cursor = self._db[query.collection].find(match).sort([(time_field, -1), ("_id", -1)])
        found = [_decoded(query.collection, doc) async for doc in cursor.limit(query.limit)]
        return [event for event in found if event is not None]

    async def ping(self) -> None:
        await self._db.command("ping")

    async def coins_added(self) -> list[str]:
        return sorted(await self._db["coins"].distinct("symbol"))


def _decoded(collection: str, doc: dict[str, Any]) -> Event | None:
    """The stored event; None, with a warning, for a document that no longer decodes (an
    older release's: a change whose id was derived from a microsecond ``decided_at``), so
    one bad document cannot fail every read of its series, nor the batch that replays it."""
    try:
        return from_document(doc)
    except (KeyError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        log.warning(
            "stored %s document %r does not decode, skipped: %s",
            collection,
            doc.get("_id"),
            str(error).splitlines()[0] if str(error) else repr(error),
            extra={"collection": collection, "event_id": doc.get("_id")},
        )
        return None


class InMemoryEventStore(EventStore):
    """The same contract over dicts, for unit tests."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Event]] = {name: {} for name in TIME_FIELD}
        self.projections: dict[tuple[str, str], Projection] = {}

    async def upsert(self, events: Sequence[Event]) -> None:
        for event in events:
            self.collections[COLLECTIONS[event.type]][event.event_id] = event
        await self._follow(events)

    async def _projection(self, symbol: str, interval: str) -> Projection:
        return self.projections.get((symbol, interval), Projection())

    async def _project(
        self, symbol: str, interval: str, lineup: Lineup | None, newest: Position, read: Projection
    ) -> bool:
        if self.projections.get((symbol, interval), Projection()) != read:
            return False
        self.projections[(symbol, interval)] = Projection(lineup, newest, (read.revision or 0) + 1)
        return True

    async def find(self, query: PageQuery) -> list[Event]:
        time_field = query.time_field

        def key(event: Event) -> Position:
            return getattr(event, time_field), event.event_id

        found = sorted(
            (
                e
                for e in self.collections[query.collection].values()
                if (e.symbol, e.interval) == (query.symbol, query.interval)
                and (query.start is None or getattr(e, time_field) >= query.start)
                and (query.end is None or getattr(e, time_field) <= query.end)
                and (query.before is None or key(e) < query.before)
                and (not query.served or getattr(e, "role", None) in SERVED_ROLES)
                and (query.collection not in AHEAD or getattr(e, "horizon", 1) == query.horizon)
            ),
            key=key,
            reverse=True,
        )
        return found[: query.limit]

    async def ping(self) -> None:
        return None

    async def coins_added(self) -> list[str]:
        return sorted({e.symbol for e in self.collections["coins"].values()})
