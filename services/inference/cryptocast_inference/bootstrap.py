"""Composition root of the inference service."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

import httpx

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.runtime import Resources
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.handlers import InferenceDeps, handle, handle_model_changes
from cryptocast_inference.history import CandleHistory, GatewayCandleHistory
from cryptocast_inference.predictors import CardedPredictor, Predictor
from cryptocast_inference.registry import build_lineup, lineup_of
from cryptocast_inference.settings import InferenceSettings
from cryptocast_inference.windows import CandleWindows


@dataclass
class Inference:
    bus: Bus
    common: CommonSettings
    settings: InferenceSettings
    deps: InferenceDeps
    resources: Resources
    name: str = "inference"

    async def start(self) -> None:
        async def follow(events: list[Event]) -> list[Event]:
            return await handle_model_changes(events, self.deps.lineup)

        async def handler(events: list[Event]) -> list[Event]:
            return await handle(events, self.deps)

        # Every replica follows every lifecycle decision: a queue of its own.
        await self.bus.consume(
            f"{self.common.queue_for('inference.lineup')}.{uuid4().hex[:12]}",
            [f"model_change.*.{self.common.interval}"],
            follow,
            batch_size=self.settings.batch_size,
            exclusive=True,
        )
        await self.bus.consume(
            self.common.queue_for("inference"),
            [f"candle.*.{self.common.interval}"],
            handler,
            batch_size=self.settings.batch_size,
        )
        for predictor in self.deps.lineup.models:
            if isinstance(predictor, CardedPredictor):  # the baseline has no card to show
                await self.bus.publish(predictor.cards(self.common.symbols, self.common.interval))

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
    lineup = lineup_of([predictor]) if predictor else build_lineup(settings, common.interval)
    resources = Resources()
    if history is None:
        http = httpx.AsyncClient(base_url=settings.gateway_url, timeout=10)
        resources.own(http.aclose)
        history = GatewayCandleHistory(http)
    deps = InferenceDeps(lineup, CandleWindows(lineup.window), history)
    return Inference(await resources.bus(common, bus), common, settings, deps, resources)
