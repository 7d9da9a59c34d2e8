"""Closed candles in, predictions out: one per loaded model of the candle's interval
(champion, challengers, the no-change baseline) and horizon (1 .. the configured number of
candles ahead, as far as the model forecasts), each labelled with its role on the symbol; and
the lifecycle's decisions in, applied to this replica's lineup."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from cryptocast_common.events import (
    BasedOn,
    Candle,
    CoinAdded,
    Event,
    ModelChange,
    Prediction,
    interval_delta,
)
from cryptocast_common.registry import RegistryError
from cryptocast_inference.artifacts import ArtifactError
from cryptocast_inference.history import CandleHistory, HistoryUnavailable
from cryptocast_inference.lineup import Lineup
from cryptocast_inference.predictors import CardedPredictor, DistributionPredictor, Predictor
from cryptocast_inference.registry import ModelSource
from cryptocast_inference.windows import CandleWindows

log = logging.getLogger(__name__)
# Changes naming a model a replica may not have yet: a new version, or a new champion.
LOADS = frozenset({"registered", "promoted", "demoted", "pinned", "gate_opened", "gate_closed"})


def _counter(name: str, documentation: str, label: str) -> Counter:
    return Counter(name, documentation, [label], registry=None)


@dataclass
class InferenceDeps:
    lineup: Lineup
    windows: CandleWindows
    history: CandleHistory
    # The bootstrap passes the process's registered counters; tests read these.
    unpredicted: Counter = field(
        default_factory=lambda: _counter("unpredicted", "Candles left unpredicted", "reason")
    )
    history_reads: Counter = field(
        default_factory=lambda: _counter("history_reads", "Reads of storage", "outcome")
    )
    horizons: int = 1  # predict 1 .. horizons candles ahead where a model can


async def _window_for(candle: Candle, deps: InferenceDeps) -> list[Candle] | None:
    # Storage is read when the candle before this one is not held (see ``knows``): once per
    # series as it starts, after a hand-over or a gap; a series on the bus never waits on it.
    asked = deps.windows.knows(candle)
    deps.windows.add(candle)
    size = deps.lineup.window_for(candle.interval)
    window = deps.windows.full(candle, size)
    if window is None and not asked and size > 1:
        try:
            older = await deps.history.before(
                candle.symbol, candle.interval, candle.open_time, size - 1
            )
        except HistoryUnavailable:
            deps.history_reads.labels("failed").inc()
            deps.windows.forget_reads(candle)  # the next candle of the series asks again
            raise  # the bus retries the candle, then dead-letters it with the reason
        deps.history_reads.labels("ok").inc()
        deps.windows.seed(older)
        window = deps.windows.full(candle, size)
    return window


async def handle_candles(candles: Sequence[Candle], deps: InferenceDeps) -> list[Event]:
    """Predictions for each candle whose window is complete; one predictor call per model,
    interval and horizon in a batch. A candle without them is counted by reason: ``warm_up``
    (fewer candles than a window exist before it) or ``gap`` (some of those before it are
    missing)."""
    ready: dict[str, list[tuple[Candle, list[Candle]]]] = {}
    for candle in sorted(candles, key=lambda c: c.open_time):
        window = await _window_for(candle, deps)
        if window is None:
            needed = deps.lineup.window_for(candle.interval) - 1
            reason = "warm_up" if deps.windows.held_before(candle) < needed else "gap"
            deps.unpredicted.labels(reason).inc()
            log.info(
                "no prediction: the candles before it are missing",
                extra={
                    "symbol": candle.symbol,
                    "open_time": candle.open_time.isoformat(),
                    "reason": reason,
                },
            )
        else:
            ready.setdefault(candle.interval, []).append((candle, window))
    predictions: list[Event] = []
    for interval, made in ready.items():
        for predictor in deps.lineup.for_interval(interval):
            windows = [window[-predictor.window :] for _, window in made]
            for horizon in range(1, min(deps.horizons, predictor.horizons) + 1):
                forecasts = _forecasts(predictor, windows, horizon)
                for (candle, _), forecast in zip(made, forecasts, strict=True):
                    prediction = _prediction(candle, predictor, horizon, forecast, deps.lineup)
                    if prediction is not None:
                        predictions.append(prediction)
    return predictions


def _forecasts(
    predictor: Predictor, windows: list[list[Candle]], horizon: int
) -> list[dict[str, Any]]:
    if isinstance(predictor, DistributionPredictor):
        return [
            {
                "predicted_close": f.point,
                "interval_80": {"lower": f.lower_80, "upper": f.upper_80},
                "interval_95": {"lower": f.lower_95, "upper": f.upper_95},
                "p_up": f.p_up,
            }
            for f in predictor.predict_distribution(windows, horizon)
        ]
    return [{"predicted_close": close} for close in predictor.predict(windows, horizon)]


def _prediction(
    candle: Candle, predictor: Predictor, horizon: int, forecast: dict[str, Any], lineup: Lineup
) -> Prediction | None:
    """The prediction ``horizon`` candles ahead; the champion's gate, decided on one-step
    verdicts, says for every horizon whether it serves its own point or no change."""
    series = (candle.symbol, candle.interval)
    role = lineup.role(str(predictor.model), series)
    if role == "champion":
        gate = lineup.gate(series)
        forecast = forecast | {"gate": gate}
        if gate == "closed":  # no change served; the model's own close kept for the record
            forecast |= {
                "predicted_close": candle.close,
                "model_close": forecast["predicted_close"],
            }
    try:
        return Prediction(
            symbol=candle.symbol,
            interval=candle.interval,
            based_on=BasedOn(close_time=candle.close_time, close=candle.close),
            target_time=candle.close_time + horizon * interval_delta(candle.interval),
            horizon=horizon,
            model=predictor.model,
            skill=predictor.skill,
            role=role,
            **forecast,
        )
    except ValueError as error:  # a non-finite or non-positive number from the model
        log.error(
            "predictor returned an unusable forecast",
            extra={
                "symbol": candle.symbol,
                "model": str(predictor.model),
                "forecast": repr(forecast),
                "error": str(error),
            },
        )
        return None


async def handle(events: list[Event], deps: InferenceDeps) -> list[Event]:
    return await handle_candles([e for e in events if isinstance(e, Candle)], deps)


@dataclass
class LineupDeps:
    lineup: Lineup
    windows: CandleWindows
    source: ModelSource
    symbols: Sequence[str]  # the coins a newly loaded model shows its card for


async def handle_model_changes(events: list[Event], deps: LineupDeps) -> list[Event]:
    """Follow the lifecycle; load a version the trainer registered, or one the lifecycle
    names that this replica has not loaded yet, and publish its card. A version that cannot
    be loaded is refused (logged, and announced), and the current champion keeps serving.
    A coin added at run time gets the cards of its interval's models."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, CoinAdded):
            out += [
                card
                for predictor in deps.lineup.for_interval(event.interval)
                if isinstance(predictor, CardedPredictor) and predictor.interval is not None
                for card in predictor.cards([event.symbol], predictor.interval)
            ]
        if not isinstance(event, ModelChange):
            continue
        model = str(event.model)
        if model not in deps.lineup.loaded and event.kind in LOADS:
            try:
                predictor = await deps.source.fetch(model)
            except (ArtifactError, RegistryError) as error:
                log.error("model refused: %s", error, extra={"model": model})
                out.append(
                    ModelChange(
                        symbol=event.symbol,
                        interval=event.interval,
                        kind="refused",
                        model=event.model,
                        by="inference",
                        reason=str(error)[:500],
                        decided_at=event.decided_at,
                    )
                )
                continue
            deps.lineup.add(predictor)
            deps.windows.grow(deps.lineup.window)
            log.info("model loaded as a challenger", extra={"model": model})
            if isinstance(predictor, CardedPredictor) and predictor.interval is not None:
                out += predictor.cards(deps.symbols, predictor.interval)
        deps.lineup.apply(event)
    return out
