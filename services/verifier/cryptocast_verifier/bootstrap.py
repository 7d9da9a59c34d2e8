"""Composition root of the verifier."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.runtime import Resources, indexed
from cryptocast_common.settings import CommonSettings
from cryptocast_verifier.handlers import (
    GiveUps,
    LifecycleDeps,
    VerifierDeps,
    handle,
    handle_lifecycle,
)
from cryptocast_verifier.lifecycle_store import (
    InMemoryLifecycleStore,
    LifecycleStore,
    MongoLifecycleStore,
)
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
    lifecycle: LifecycleDeps
    resources: Resources
    batch_size: int
    name: str = "verifier"

    async def start(self) -> None:
        async def handler(events: list[Event]) -> list[Event]:
            return await handle(events, self.deps)

        await self.bus.consume(
            self.common.queue_for("verifier"),
            self.common.routing_keys("prediction", "candle"),
            handler,
            batch_size=self.batch_size,
        )

        async def decide(events: list[Event]) -> list[Event]:
            return await handle_lifecycle(events, self.lifecycle)

        await self.bus.consume(
            self.common.queue_for("verifier.lifecycle"),
            self.common.routing_keys("verification", "model_change"),
            decide,
            batch_size=self.batch_size,
            single_active=True,
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
    lifecycle_store: LifecycleStore | None = None,
) -> Verifier:
    """With ``store`` given (tests, the backtest) and no ``lifecycle_store``, the lifecycle
    state is kept in memory too; otherwise both are in MongoDB."""
    common = common or CommonSettings()
    settings = settings or VerifierSettings()
    resources = Resources()
    if store is None:
        database = resources.database(common)
        store = await indexed(MongoVerifierStore(database))
        if lifecycle_store is None:
            lifecycle_store = await indexed(MongoLifecycleStore(database))
    deps = VerifierDeps(
        store, settings.tolerance_pct, settings.reorder_candles, settings.max_closes, GIVEN_UP
    )
    lifecycle = LifecycleDeps(
        lifecycle_store or InMemoryLifecycleStore(), settings.lifecycle_policy()
    )
    return Verifier(
        await resources.bus(common, bus),
        common,
        deps,
        lifecycle,
        resources,
        batch_size=settings.batch_size,
    )
