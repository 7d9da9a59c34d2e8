"""Composition root of the inference service."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

import httpx
from prometheus_client import Counter

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.registry import MongoModelRegistry
from cryptocast_common.runtime import Resources, indexed
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.handlers import (
    InferenceDeps,
    LineupDeps,
    handle,
    handle_model_changes,
)
from cryptocast_inference.history import CandleHistory, GatewayCandleHistory
from cryptocast_inference.predictors import CardedPredictor, Predictor
from cryptocast_inference.registry import (
    FolderModels,
    ModelSource,
    RegisteredModels,
    build_lineup,
    lineup_of,
)
from cryptocast_inference.settings import InferenceSettings
from cryptocast_inference.windows import CandleWindows


def _labelled_counter(
    name: str, documentation: str, label: str, values: tuple[str, ...]
) -> Counter:
    """Each labelled series starts at zero, so that increase() sees its first events too."""
    counter = Counter(name, documentation, [label])
    for value in values:
        counter.labels(value)
    return counter


# Process-wide, as Prometheus scrapes one process (served by the health server's /metrics).
UNPREDICTED = _labelled_counter(
    "cryptocast_inference_unpredicted",
    "Candles no prediction was made for: warm_up (a series' first candles), "
    "gap (candles before it missing from the bus and from storage)",
    "reason",
    ("warm_up", "gap"),
)
HISTORY_READS = _labelled_counter(
    "cryptocast_inference_history_reads",
    "Reads of stored candles to rebuild a window (after a start or a hand-over; "
    "none in steady state)",
    "outcome",
    ("ok", "failed"),
)


@dataclass
class Inference:
    bus: Bus
    common: CommonSettings
    settings: InferenceSettings
    deps: InferenceDeps
    following: LineupDeps
    resources: Resources
    name: str = "inference"

    async def start(self) -> None:
        async def follow(events: list[Event]) -> list[Event]:
            return await handle_model_changes(events, self.following)

        async def handler(events: list[Event]) -> list[Event]:
            return await handle(events, self.deps)

        # Every replica follows every lifecycle decision: a queue of its own.
        await self.bus.consume(
            f"{self.common.queue_for('inference.lineup')}.{uuid4().hex[:12]}",
            self.common.routing_keys("model_change", "coin_added"),
            follow,
            batch_size=self.settings.batch_size,
            exclusive=True,
        )
        # One replica at a time takes every candle, the others stand by and take over when it
        # goes: each series' windows stay in one memory, built from the bus, in order.
        await self.bus.consume(
            self.common.queue_for("inference"),
            self.common.routing_keys("candle"),
            handler,
            batch_size=self.settings.batch_size,
            single_active=True,
        )
        for predictor in self.deps.lineup.models:
            # The baseline has no card to show.
            if isinstance(predictor, CardedPredictor) and predictor.interval is not None:
                await self.bus.publish(predictor.cards(self.common.symbols, predictor.interval))

    async def check_ready(self) -> None:
        await self.bus.ping()

    async def stop(self) -> None:
        await self.resources.close()


async def bootstrap(
    common: CommonSettings | None = None,
    settings: InferenceSettings | None = None,
    bus: Bus | None = None,
    predictor: Predictor | None = None,
    history: CandleHistory | None = None,
) -> Inference:
    """``predictor`` given (tests): that model alone; otherwise the configured lineup."""
    common = common or CommonSettings()
    settings = settings or InferenceSettings()
    resources = Resources()
    source: ModelSource = FolderModels(settings.artifacts_dir, common.intervals)
    if settings.registry == "mongo":
        registry = await indexed(MongoModelRegistry(resources.database(common)))
        await registry.seed_from_folder(settings.artifacts_dir)  # first start; then a no-op
        source = RegisteredModels(registry, settings.model_cache_dir, common.intervals)
    if predictor:
        lineup = lineup_of([predictor])
    else:
        lineup = await build_lineup(settings, source, common.intervals, common.interval)
    if history is None:
        http = httpx.AsyncClient(base_url=settings.gateway_url, timeout=10)
        resources.own(http.aclose)
        history = GatewayCandleHistory(http)
    windows = CandleWindows(lineup.window)
    deps = InferenceDeps(lineup, windows, history, UNPREDICTED, HISTORY_READS, settings.horizons)
    following = LineupDeps(lineup, windows, source, common.symbols)
    return Inference(await resources.bus(common, bus), common, settings, deps, following, resources)
