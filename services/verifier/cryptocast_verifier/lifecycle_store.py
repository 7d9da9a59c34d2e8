"""What the lifecycle policy remembers: each model's recent verdicts per symbol, and each
symbol's lineup (champion, gate, pins, blocks). In MongoDB, so that a restarted verifier
decides from the same record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.events import Verification
from cryptocast_common.lifecycle import Lineup, Score, from_document, to_document

Series = tuple[str, str]  # (symbol, interval)


def score_of(verification: Verification) -> Score:
    return Score(verification.target_time, verification.own_error_pct, verification.naive_error_pct)


class LifecycleStore(Protocol):
    async def add_scores(self, verifications: Sequence[Verification]) -> None:
        """Remember the verdicts; the same verification twice counts once."""
        ...

    async def recent(self, symbol: str, interval: str, model: str, n: int) -> list[Score]:
        """The model's last ``n`` scores on the symbol, oldest first."""
        ...

    async def scores_at(
        self, symbol: str, interval: str, model: str, times: Sequence[datetime]
    ) -> list[Score]:
        """The model's scores on the symbol's candles with these target times, oldest first."""
        ...

    async def lineup(self, symbol: str, interval: str) -> Lineup | None: ...

    async def save_lineup(self, symbol: str, interval: str, lineup: Lineup) -> None: ...


class InMemoryLifecycleStore:
    def __init__(self) -> None:
        self.scores: dict[tuple[str, str, str], dict[str, Score]] = defaultdict(dict)
        self.lineups: dict[Series, Lineup] = {}

    async def add_scores(self, verifications: Sequence[Verification]) -> None:
        for v in verifications:
            self.scores[(v.symbol, v.interval, str(v.model))][v.event_id] = score_of(v)

    async def recent(self, symbol: str, interval: str, model: str, n: int) -> list[Score]:
        scores = sorted(self.scores[(symbol, interval, model)].values(), key=_by_time)
        return scores[-n:]

    async def scores_at(
        self, symbol: str, interval: str, model: str, times: Sequence[datetime]
    ) -> list[Score]:
        wanted = set(times)
        scores = self.scores[(symbol, interval, model)].values()
        return sorted((s for s in scores if s.target_time in wanted), key=_by_time)

    async def lineup(self, symbol: str, interval: str) -> Lineup | None:
        return self.lineups.get((symbol, interval))

    async def save_lineup(self, symbol: str, interval: str, lineup: Lineup) -> None:
        self.lineups[(symbol, interval)] = lineup


def _by_time(score: Score) -> datetime:
    return score.target_time


class MongoLifecycleStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._scores = db["lifecycle_scores"]
        self._lineups = db["lifecycle_lineups"]

    async def ensure_indexes(self) -> None:
        await self._scores.create_index(
            [("symbol", 1), ("interval", 1), ("model", 1), ("target_time", -1)]
        )

    async def add_scores(self, verifications: Sequence[Verification]) -> None:
        """One unordered bulk upsert for the batch, keyed by the verification's id (a
        message delivered twice into one batch is written once)."""
        unique = {v.event_id: v for v in verifications}
        if not unique:
            return
        await self._scores.bulk_write(
            [ReplaceOne({"_id": i}, _score_document(v), upsert=True) for i, v in unique.items()],
            ordered=False,
        )

    async def recent(self, symbol: str, interval: str, model: str, n: int) -> list[Score]:
        query = {"symbol": symbol, "interval": interval, "model": model}
        # All n in the first batch: no getMore round trip for the rest.
        cursor = self._scores.find(query).sort("target_time", -1).limit(n).batch_size(n)
        found = await cursor.to_list()
        return [_score(doc) for doc in reversed(found)]

    async def scores_at(
        self, symbol: str, interval: str, model: str, times: Sequence[datetime]
    ) -> list[Score]:
        query: dict[str, Any] = {"symbol": symbol, "interval": interval, "model": model}
        query["target_time"] = {"$in": list(times)}
        found = await self._scores.find(query).sort("target_time", 1).to_list()
        return [_score(doc) for doc in found]

    async def lineup(self, symbol: str, interval: str) -> Lineup | None:
        doc = await self._lineups.find_one({"_id": f"{symbol}:{interval}"})
        return None if doc is None else from_document(doc)

    async def save_lineup(self, symbol: str, interval: str, lineup: Lineup) -> None:
        key = f"{symbol}:{interval}"
        await self._lineups.replace_one(
            {"_id": key}, to_document(lineup) | {"_id": key}, upsert=True
        )


def _score_document(v: Verification) -> dict[str, Any]:
    score = score_of(v)
    return {
        "_id": v.event_id,  # not every server takes it from the filter
        "symbol": v.symbol,
        "interval": v.interval,
        "model": str(v.model),
        "target_time": score.target_time,
        "model_error": score.model_error,
        "naive_error": score.naive_error,
    }


def _score(doc: dict[str, Any]) -> Score:
    return Score(doc["target_time"], doc["model_error"], doc["naive_error"])
