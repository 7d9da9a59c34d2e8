"""What the lifecycle policy remembers: each model's recent verdicts per symbol, and each
symbol's lineup (champion, gate, pins, blocks). In MongoDB, so that a restarted verifier
decides from the same record.

Beside each series' lineup, the store counts the writes of its scores (its *revision*):
``add_scores`` adds one per series it wrote to, once the scores are written, and ``state``
reads the count with the lineup, in the same request (in MongoDB a document of its own beside
the lineup's, ``<symbol>:<interval>:scores``, both read by id). A verifier that keeps scores
in memory compares it with the count it expects from its own writes to tell whether another
verifier wrote meanwhile (see ``handlers.LifecycleDeps``). A redelivered verdict adds one
again: the count only ever makes a reader read again, it is not part of the record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.events import Verification
from cryptocast_common.lifecycle import Lineup, Score, from_document, to_document

Series = tuple[str, str]  # (symbol, interval)
REVISION = "scores_revision"  # the count in a series' revision document


def score_of(verification: Verification) -> Score:
    return Score(verification.target_time, verification.own_error_pct, verification.naive_error_pct)


class LifecycleStore(Protocol):
    async def add_scores(self, verifications: Sequence[Verification]) -> None:
        """Remember the verdicts; the same verification twice counts once. Then, the scores
        written, add one to the revision of each series among them (none if there are none)."""
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

    async def state(self, symbol: str, interval: str) -> tuple[Lineup | None, int]:
        """The stored lineup and the revision of the series' scores (0 before any), in one
        read."""
        ...

    async def states(self, series: Collection[Series]) -> dict[Series, tuple[Lineup | None, int]]:
        """``state`` of each of these series, all in one read."""
        ...

    async def save_lineup(self, symbol: str, interval: str, lineup: Lineup) -> None:
        """Store the lineup; the revision stays as it is."""
        ...


class InMemoryLifecycleStore:
    def __init__(self) -> None:
        self.scores: dict[tuple[str, str, str], dict[str, Score]] = defaultdict(dict)
        self.lineups: dict[Series, Lineup] = {}
        self.revisions: dict[Series, int] = defaultdict(int)

    async def add_scores(self, verifications: Sequence[Verification]) -> None:
        for v in verifications:
            self.scores[(v.symbol, v.interval, str(v.model))][v.event_id] = score_of(v)
        for series in {(v.symbol, v.interval) for v in verifications}:
            self.revisions[series] += 1

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
        return (await self.state(symbol, interval))[0]

    async def state(self, symbol: str, interval: str) -> tuple[Lineup | None, int]:
        return self.lineups.get((symbol, interval)), self.revisions[(symbol, interval)]

    async def states(self, series: Collection[Series]) -> dict[Series, tuple[Lineup | None, int]]:
        return {s: (self.lineups.get(s), self.revisions[s]) for s in series}

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
        message delivered twice into one batch is written once), then one for the revisions
        of its series: after the scores, so that a reader who sees the new revision finds
        them."""
        unique = {v.event_id: v for v in verifications}
        if not unique:
            return
        await self._scores.bulk_write(
            [ReplaceOne({"_id": i}, _score_document(v), upsert=True) for i, v in unique.items()],
            ordered=False,
        )
        series = sorted({(v.symbol, v.interval) for v in unique.values()})
        await self._lineups.bulk_write(
            [
                UpdateOne({"_id": _revision_key(*s)}, {"$inc": {REVISION: 1}}, upsert=True)
                for s in series
            ],
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
        return (await self.state(symbol, interval))[0]

    async def state(self, symbol: str, interval: str) -> tuple[Lineup | None, int]:
        return (await self.states([(symbol, interval)]))[(symbol, interval)]

    async def states(self, series: Collection[Series]) -> dict[Series, tuple[Lineup | None, int]]:
        """By id, strings: the lineups' and their revisions' documents."""
        if not series:
            return {}
        ids = [key for s in series for key in (_key(*s), _revision_key(*s))]
        found = self._lineups.find({"_id": {"$in": ids}}, batch_size=len(ids))
        docs = {doc["_id"]: doc async for doc in found}
        out: dict[Series, tuple[Lineup | None, int]] = {}
        for s in series:
            lineup = docs.get(_key(*s))
            revision = docs.get(_revision_key(*s), {}).get(REVISION, 0)
            out[s] = (None if lineup is None else from_document(lineup), int(revision))
        return out

    async def save_lineup(self, symbol: str, interval: str, lineup: Lineup) -> None:
        key = _key(symbol, interval)
        await self._lineups.replace_one(
            {"_id": key}, to_document(lineup) | {"_id": key}, upsert=True
        )


def _key(symbol: str, interval: str) -> str:
    return f"{symbol}:{interval}"


def _revision_key(symbol: str, interval: str) -> str:
    return f"{symbol}:{interval}:scores"


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
