"""What the verifier remembers between messages: predictions waiting for their target candle,
and recent closes for predictions that arrive after their target candle (replays, restarts).

Kept in MongoDB so that pending predictions survive a restart and replicas share them. The
reads take any number of series at once: a batch of messages spread over many coins costs one
request, not one per coin.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.documents import from_documents, to_document
from cryptocast_common.events import Candle, Prediction, interval_delta, iso_utc

log = logging.getLogger(__name__)
At = tuple[str, str, datetime]  # (symbol, interval, a close time)
MIGRATE_BATCH = 1000  # pending predictions given their key per bulk write at start
ONE_BATCH = 10_000  # a read's documents in its first reply: no getMore round trip
# Before every candle: the low end of a series' range of string keys (see forget_*_before).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class VerifierStore(Protocol):
    async def save_closes(self, candles: Sequence[Candle]) -> None: ...

    async def closes_at(self, wanted: Collection[At]) -> dict[At, float]:
        """The stored closes among ``wanted``, of any number of series, in one request."""
        ...

    async def add_pending(self, predictions: Sequence[Prediction]) -> None: ...

    async def pending_for(self, targets: Collection[At]) -> list[Prediction]:
        """The pending predictions whose (symbol, interval, target) is one of ``targets``, of
        any number of series, in one request."""
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

    async def closes_at(self, wanted: Collection[At]) -> dict[At, float]:
        return {at: self.closes[at] for at in wanted if at in self.closes}

    async def add_pending(self, predictions: Sequence[Prediction]) -> None:
        for prediction in predictions:
            self.pending[prediction.event_id] = prediction

    async def pending_for(self, targets: Collection[At]) -> list[Prediction]:
        wanted = set(targets)
        return [p for p in self.pending.values() if (p.symbol, p.interval, p.target_time) in wanted]

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
        """The indexes, and the key the reads use on pending predictions stored without it
        (see ``add_waits_for``). Idempotent: every start runs it."""
        await self._closes.create_index([("symbol", 1), ("interval", 1), ("close_time", 1)])
        await self._pending.create_index([("symbol", 1), ("interval", 1), ("target_time", 1)])
        await self._pending.create_index("waits_for")
        await self.add_waits_for()

    async def add_waits_for(self) -> int:
        """Give ``waits_for`` to the pending predictions an earlier release stored without it,
        which ``pending_for`` would never find; returns how many were given it.

        The value is the one ``add_pending`` writes, from the document's own symbol, interval
        and target. Idempotent, and safe beside a running verifier: only a document still
        without the key is updated (a replacement by ``add_pending`` meanwhile wins), in
        unordered bulk writes of ``MIGRATE_BATCH``. The documents are found by the key's
        absence, not by time (which nx-27017 would compare in Python)."""
        missing = self._pending.find(
            {"waits_for": {"$exists": False}},
            {"symbol": 1, "interval": 1, "target_time": 1},
            batch_size=MIGRATE_BATCH,
        )
        writes: list[UpdateOne] = []
        given = 0
        async for doc in missing:
            key = _waits_for(doc["symbol"], doc["interval"], doc["target_time"])
            writes.append(
                UpdateOne(
                    {"_id": doc["_id"], "waits_for": {"$exists": False}},
                    {"$set": {"waits_for": key}},
                )
            )
            if len(writes) == MIGRATE_BATCH:
                given += await self._set_keys(writes)
                writes = []
        if writes:
            given += await self._set_keys(writes)
        if given:
            log.info("pending predictions given their waits_for key", extra={"count": given})
        return given

    async def _set_keys(self, writes: list[UpdateOne]) -> int:
        result = await self._pending.bulk_write(writes, ordered=False)
        return result.modified_count

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

    async def closes_at(self, wanted: Collection[At]) -> dict[At, float]:
        # By id, a string: the Mongo wire server evaluates a list of times in Python over
        # every stored document, but a list of ids in SQL.
        if not wanted:
            return {}
        at_id = {
            Candle.id_for(symbol, interval, moment - interval_delta(interval)): (
                symbol,
                interval,
                moment,
            )
            for symbol, interval, moment in wanted
        }
        found = self._closes.find({"_id": {"$in": list(at_id)}}, {"close": 1}, batch_size=ONE_BATCH)
        return {at_id[doc["_id"]]: float(doc["close"]) async for doc in found}

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

    async def pending_for(self, targets: Collection[At]) -> list[Prediction]:
        if not targets:
            return []
        keys = sorted({_waits_for(*target) for target in targets})
        cursor = self._pending.find(
            {"waits_for": {"$in": keys}}, {"waits_for": 0}, batch_size=ONE_BATCH
        )
        return from_documents(Prediction, await cursor.to_list())

    async def forget_closes_before(self, symbol: str, interval: str, cutoff: datetime) -> int:
        # A range of ids, strings that sort as the times in them (a candle's id ends with its
        # open time in one ISO 8601 form): nx-27017 deletes by a time 24 times slower.
        last = Candle.id_for(symbol, interval, cutoff - interval_delta(interval))
        first = Candle.id_for(symbol, interval, EPOCH)
        result = await self._closes.delete_many({"_id": {"$gte": first, "$lt": last}})
        return result.deleted_count

    async def forget_pending_before(
        self, symbol: str, interval: str, cutoff: datetime
    ) -> list[datetime]:
        # By the waits_for key's range, as closes by their ids (7 times faster on nx-27017).
        first, last = _waits_for(symbol, interval, EPOCH), _waits_for(symbol, interval, cutoff)
        query = {"waits_for": {"$gte": first, "$lt": last}}
        old = await self._pending.find(query, {"target_time": 1}).to_list()
        if old:
            await self._pending.delete_many(query)
        return [doc["target_time"] for doc in old]


def _waits_for(symbol: str, interval: str, target: datetime) -> str:
    """The close a pending prediction waits for, as a string key (see ``closes_at``)."""
    return f"{symbol}:{interval}:{iso_utc(target)}"
