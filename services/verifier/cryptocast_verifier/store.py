"""What the verifier remembers between messages: predictions waiting for their target candle,
and recent closes for predictions that arrive after their target candle (replays, restarts).

Kept in MongoDB so that pending predictions survive a restart and replicas share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.documents import from_documents, to_document
from cryptocast_common.events import Candle, Prediction, interval_delta, iso_utc


class VerifierStore(Protocol):
    async def save_closes(self, candles: Sequence[Candle]) -> None: ...

    async def closes_at(
        self, symbol: str, interval: str, close_times: Sequence[datetime]
    ) -> dict[datetime, float]:
        """The stored closes among ``close_times``."""
        ...

    async def add_pending(self, predictions: Sequence[Prediction]) -> None: ...

    async def pending_for(
        self, symbol: str, interval: str, targets: Sequence[datetime]
    ) -> list[Prediction]:
        """The pending predictions whose target is one of ``targets``."""
        ...

    async def forget_closes_before(self, symbol: str, interval: str, cutoff: datetime) -> int:
        """Delete closes before ``cutoff``; returns how many."""
        ...

    async def forget_pending_before(
        self, symbol: str, interval: str, cutoff: datetime
    ) -> list[datetime]:
        """Delete pending predictions whose target is before ``cutoff``; returns their
        targets. A verified prediction stays pending until then (see handlers)."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...


class InMemoryVerifierStore:
    def __init__(self) -> None:
        self.closes: dict[tuple[str, str, datetime], float] = {}
        self.pending: dict[str, Prediction] = {}

    async def save_closes(self, candles: Sequence[Candle]) -> None:
        for candle in candles:
            self.closes[(candle.symbol, candle.interval, candle.close_time)] = candle.close

    async def closes_at(
        self, symbol: str, interval: str, close_times: Sequence[datetime]
    ) -> dict[datetime, float]:
        found = ((t, self.closes.get((symbol, interval, t))) for t in close_times)
        return {t: close for t, close in found if close is not None}

    async def add_pending(self, predictions: Sequence[Prediction]) -> None:
        for prediction in predictions:
            self.pending[prediction.event_id] = prediction

    async def pending_for(
        self, symbol: str, interval: str, targets: Sequence[datetime]
    ) -> list[Prediction]:
        wanted = set(targets)
        return [
            p
            for p in self.pending.values()
            if (p.symbol, p.interval) == (symbol, interval) and p.target_time in wanted
        ]

    async def forget_closes_before(self, symbol: str, interval: str, cutoff: datetime) -> int:
        old = [k for k in self.closes if k[:2] == (symbol, interval) and k[2] < cutoff]
        for key in old:
            del self.closes[key]
        return len(old)

    async def forget_pending_before(
        self, symbol: str, interval: str, cutoff: datetime
    ) -> list[datetime]:
        old = [
            k
            for k, p in self.pending.items()
            if (p.symbol, p.interval) == (symbol, interval) and p.target_time < cutoff
        ]
        return [self.pending.pop(key).target_time for key in old]

    async def ping(self) -> None:
        return None


class MongoVerifierStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db
        self._closes = db["verifier_closes"]
        self._pending = db["verifier_pending"]

    async def ping(self) -> None:
        await self._db.command("ping")

    async def ensure_indexes(self) -> None:
        await self._closes.create_index([("symbol", 1), ("interval", 1), ("close_time", 1)])
        await self._pending.create_index([("symbol", 1), ("interval", 1), ("target_time", 1)])
        await self._pending.create_index("waits_for")

    async def save_closes(self, candles: Sequence[Candle]) -> None:
        await self._closes.bulk_write(
            [
                ReplaceOne(
                    {"_id": c.event_id},
                    {
                        "_id": c.event_id,
                        "symbol": c.symbol,
                        "interval": c.interval,
                        "close_time": c.close_time,
                        "close": c.close,
                    },
                    upsert=True,
                )
                for c in candles
            ],
            ordered=False,
        )

    async def closes_at(
        self, symbol: str, interval: str, close_times: Sequence[datetime]
    ) -> dict[datetime, float]:
        # By id, a string: the Mongo wire server evaluates a list of times in Python over
        # every stored document, but a list of ids in SQL.
        step = interval_delta(interval)
        ids = [Candle.id_for(symbol, interval, close_time - step) for close_time in close_times]
        found = self._closes.find({"_id": {"$in": ids}}, {"close_time": 1, "close": 1})
        return {doc["close_time"]: float(doc["close"]) async for doc in found}

    async def add_pending(self, predictions: Sequence[Prediction]) -> None:
        await self._pending.bulk_write(
            [
                ReplaceOne(
                    {"_id": p.event_id},
                    to_document(p) | {"waits_for": _waits_for(p.symbol, p.interval, p.target_time)},
                    upsert=True,
                )
                for p in predictions
            ],
            ordered=False,
        )

    async def pending_for(
        self, symbol: str, interval: str, targets: Sequence[datetime]
    ) -> list[Prediction]:
        keys = [_waits_for(symbol, interval, target) for target in targets]
        cursor = self._pending.find({"waits_for": {"$in": keys}}, {"waits_for": 0})
        return from_documents(Prediction, await cursor.to_list())

    async def forget_closes_before(self, symbol: str, interval: str, cutoff: datetime) -> int:
        result = await self._closes.delete_many(
            {"symbol": symbol, "interval": interval, "close_time": {"$lt": cutoff}}
        )
        return result.deleted_count

    async def forget_pending_before(
        self, symbol: str, interval: str, cutoff: datetime
    ) -> list[datetime]:
        query = {"symbol": symbol, "interval": interval, "target_time": {"$lt": cutoff}}
        old = await self._pending.find(query, {"target_time": 1}).to_list()
        if old:
            await self._pending.delete_many(query)
        return [doc["target_time"] for doc in old]


def _waits_for(symbol: str, interval: str, target: datetime) -> str:
    """The close a pending prediction waits for, as a string key (see ``closes_at``)."""
    return f"{symbol}:{interval}:{iso_utc(target)}"
