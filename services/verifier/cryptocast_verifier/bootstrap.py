"""Composition root of the verifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from pymongo import AsyncMongoClient

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.runtime import Resources
from cryptocast_common.settings import CommonSettings
from cryptocast_verifier.handlers import GiveUps, VerifierDeps, handle
from cryptocast_verifier.settings import VerifierSettings
from cryptocast_verifier.store import MongoVerifierStore, VerifierStore

# Process-wide, as Prometheus scrapes one process (served by the health server's /metrics).
GIVEN_UP = GiveUps(
    Counter(
        "cryptocast_verifier_closes_given_up",
        "Closes dropped before every prediction "
        "that could need them came (predictions far behind: inference down for long)",
    ),
    Counter(
        "cryptocast_verifier_predictions_given_up",
        "Pending predictions dropped because their target candle never came",
    ),
)


@dataclass
class Verifier:
    bus: Bus
    common: CommonSettings
    deps: VerifierDeps
    resources: Resources
    batch_size: int
    name: str = "verifier"

    async def start(self) -> None:
        async def handler(events: list[Event]) -> list[Event]:
            return await handle(events, self.deps)

        interval = self.common.interval
        await self.bus.consume(
            self.common.queue_for("verifier"),
            [f"prediction.*.{interval}", f"candle.*.{interval}"],
            handler,
            batch_size=self.batch_size,
        )

    async def check_ready(self) -> None:
        await self.bus.ping()
        await self.deps.store.ping()

    async def stop(self) -> None:
        await self.resources.close()


async def bootstrap(
    common: CommonSettings | None = None,
    settings: VerifierSettings | None = None,
    bus: Bus | None = None,
    store: VerifierStore | None = None,
) -> Verifier:
    common = common or CommonSettings()
    settings = settings or VerifierSettings()
    resources = Resources()
    if store is None:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(common.mongo_url, tz_aware=True)
        resources.own(mongo.close)
        mongo_store = MongoVerifierStore(mongo[common.mongo_db])
        await mongo_store.ensure_indexes()
        store = mongo_store
    deps = VerifierDeps(
        store, settings.tolerance_pct, settings.reorder_candles, settings.max_closes, GIVEN_UP
    )
    return Verifier(
        await resources.bus(common, bus), common, deps, resources, batch_size=settings.batch_size
    )
