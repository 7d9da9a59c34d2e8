"""Every event in MongoDB, one collection per type, upserted by event id."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.documents import from_document, to_document
from cryptocast_common.events import Candle, Event, ModelChange, Prediction, Verification

COLLECTIONS = {
    "candle": "candles",
    "prediction": "predictions",
    "verification": "verifications",
    "model": "models",
    "model_change": "model_changes",
}
Position = tuple[datetime, str]  # (time, event id): where a page ends, for the next one
# The time each collection is ordered by for "latest" and range queries.
TIME_FIELD = {
    "candles": "close_time",
    "predictions": "target_time",
    "verifications": "target_time",
    "models": "trained_at",
    "model_changes": "decided_at",
}
# What the API serves: the champion's forecasts (and those from before roles existed).
SERVED_ROLES = ("champion", None)


class EventStore(Protocol):
    async def upsert(self, events: Sequence[Event]) -> None: ...

    async def latest_prediction(self, symbol: str, interval: str) -> Prediction | None: ...

    async def verifications(self, symbol: str, interval: str, limit: int) -> list[Verification]:
        """Verdicts on served predictions, newest first."""
        ...

    async def model_changes(self, symbol: str, interval: str, limit: int) -> list[ModelChange]:
        """The lifecycle's changes on a symbol, newest first."""
        ...

    async def candles(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        """The newest ``limit`` candles closing at or before ``end``, oldest first."""
        ...

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
    ) -> list[Event]:
        """Newest first by time then id, times in [start, end], strictly after ``before``
        in that order (keyset pagination: stable while new events arrive); with ``served``,
        only predictions or verdicts of what was served (the champion's)."""
        ...

    async def ping(self) -> None: ...


class _Queries:
    """The reads every store answers through its own ``page``."""

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
    ) -> list[Event]:
        raise NotImplementedError

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


class MongoEventStore(_Queries):
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
    ) -> list[Event]:
        time_field = TIME_FIELD[collection]
        query: dict[str, Any] = {"symbol": symbol, "interval": interval}
        if served:
            query["role"] = {"$in": list(SERVED_ROLES)}
        bounds = {op: value for op, value in (("$gte", start), ("$lte", end)) if value}
        if bounds:
            query[time_field] = bounds
        if before is not None:
            at, event_id = before
            query = {
                "$and": [
                    query,
                    {
                        "$or": [
                            {time_field: {"$lt": at}},
                            {time_field: at, "_id": {"$lt": event_id}},
                        ]
                    },
                ]
            }
        cursor = self._db[collection].find(query).sort([(time_field, -1), ("_id", -1)])
        return [from_document(doc) async for doc in cursor.limit(limit)]

    async def ping(self) -> None:
        await self._db.command("ping")


class InMemoryEventStore(_Queries):
    """The same contract over dicts, for unit tests."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Event]] = {name: {} for name in TIME_FIELD}

    async def upsert(self, events: Sequence[Event]) -> None:
        for event in events:
            self.collections[COLLECTIONS[event.type]][event.event_id] = event

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
    ) -> list[Event]:
        time_field = TIME_FIELD[collection]

        def key(event: Event) -> Position:
            return getattr(event, time_field), event.event_id

        found = sorted(
            (
                e
                for e in self.collections[collection].values()
                if (e.symbol, e.interval) == (symbol, interval)
                and (start is None or getattr(e, time_field) >= start)
                and (end is None or getattr(e, time_field) <= end)
                and (before is None or key(e) < before)
                and (not served or getattr(e, "role", None) in SERVED_ROLES)
            ),
            key=key,
            reverse=True,
        )
        return found[:limit]

    async def ping(self) -> None:
        return None
