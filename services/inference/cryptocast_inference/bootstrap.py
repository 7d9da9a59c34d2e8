"""Composition root of the inference service."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.runtime import Resources
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.handlers import InferenceDeps, handle
from cryptocast_inference.history import CandleHistory, GatewayCandleHistory
from cryptocast_inference.predictors import CardedPredictor, Predictor
from cryptocast_inference.registry import build_predictor
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
        async def handler(events: list[Event]) -> list[Event]:
            return await handle(events, self.deps)

        await self.bus.consume(
            self.common.queue_for("inference"),
            [f"candle.*.{self.common.interval}"],
            handler,
            batch_size=self.settings.batch_size,
        )
        predictor = self.deps.predictor
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
    common = common or CommonSettings()
    settings = settings or InferenceSettings()
    predictor = predictor or build_predictor(settings, common.interval)
    resources = Resources()
    if history is None:
        http = httpx.AsyncClient(base_url=settings.gateway_url, timeout=10)
        resources.own(http.aclose)
        history = GatewayCandleHistory(http)
    deps = InferenceDeps(predictor, CandleWindows(predictor.window), history)
    return Inference(await resources.bus(common, bus), common, settings, deps, resources)
