"""Coins added while the deployment runs: the ingestor keeps them in a collection of its own,
follows each from then on, and again after every restart."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.documents import from_documents, to_document
from cryptocast_common.events import Candle, CoinAdded, Event
from cryptocast_ingestor.sources import UnsupportedInterval

log = logging.getLogger(__name__)
# Start ingesting a series; returns the candles to publish now (a replay's backfill of it).
Follow = Callable[[str, str], Awaitable[list[Candle]]]


class CoinStore(Protocol):
    async def added(self) -> list[CoinAdded]: ...

    async def save(self, coins: Sequence[CoinAdded]) -> None: ...


class MongoCoinStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coins = db["ingestor_coins"]

    async def added(self) -> list[CoinAdded]:
        return from_documents(CoinAdded, await self._coins.find().sort("_id", 1).to_list())

    async def save(self, coins: Sequence[CoinAdded]) -> None:
        if coins:
            writes = [ReplaceOne({"_id": c.event_id}, to_document(c), upsert=True) for c in coins]
            await self._coins.bulk_write(writes, ordered=False)


@dataclass
class InMemoryCoinStore:
    coins: dict[str, CoinAdded] = field(default_factory=dict)

    async def added(self) -> list[CoinAdded]:
        return [self.coins[key] for key in sorted(self.coins)]

    async def save(self, coins: Sequence[CoinAdded]) -> None:
        self.coins |= {c.event_id: c for c in coins}


@dataclass
class CoinDeps:
    store: CoinStore
    follow: Follow


async def handle_coins(events: Sequence[Event], deps: CoinDeps) -> list[Event]:
    """Keep each added coin (first, so a restart follows it too), then follow it; the
    candles of its history that are due now are published."""
    added = [e for e in events if isinstance(e, CoinAdded)]
    await deps.store.save(added)
    out: list[Event] = []
    for coin in added:
        out += await follow_coin(coin, deps.follow)
    return out


async def follow_coin(coin: CoinAdded, follow: Follow) -> list[Candle]:
    """Follow one added coin; one the source cannot serve is logged, not retried."""
    try:
        candles = await follow(coin.symbol, coin.interval)
    except (FileNotFoundError, ValueError, UnsupportedInterval) as error:
        log.error(
            "added coin cannot be ingested: %s",
            error,
            extra={"symbol": coin.symbol, "interval": coin.interval},
        )
        return []
    log.info(
        "following an added coin",
        extra={"symbol": coin.symbol, "interval": coin.interval, "backfill": len(candles)},
    )
    return candles
