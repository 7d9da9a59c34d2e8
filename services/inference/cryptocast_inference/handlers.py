"""Closed candles in, next-candle predictions out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptocast_common.events import BasedOn, Candle, Event, Prediction, interval_delta
from cryptocast_inference.history import CandleHistory
from cryptocast_inference.predictors import DistributionPredictor, Predictor
from cryptocast_inference.windows import CandleWindows

log = logging.getLogger(__name__)


@dataclass
class InferenceDeps:
    predictor: Predictor
    windows: CandleWindows
    history: CandleHistory


async def _window_for(candle: Candle, deps: InferenceDeps) -> list[Candle] | None:
    # Storage is read once per series (after a restart), or for a candle older than all
    # held: a series that starts on the bus (a backfill) never waits on HTTP.
    asked = deps.windows.knows(candle)
    deps.windows.add(candle)
    window = deps.windows.full(candle)
    if window is None and not asked and deps.predictor.window > 1:
        older = await deps.history.before(
            candle.symbol, candle.interval, candle.open_time, deps.predictor.window - 1
        )
        deps.windows.seed(older)
        window = deps.windows.full(candle)
    return window


async def handle_candles(candles: Sequence[Candle], deps: InferenceDeps) -> list[Event]:
    """One prediction per candle whose window is complete; one predictor call per batch."""
    ready = []
    for candle in sorted(candles, key=lambda c: c.open_time):
        window = await _window_for(candle, deps)
        if window is None:
            log.info(
                "no prediction: the candles before it are missing",
                extra={"symbol": candle.symbol, "open_time": candle.open_time.isoformat()},
            )
        else:
            ready.append((candle, window))
    if not ready:
        return []
    windows = [window for _, window in ready]
    predictor = deps.predictor
    if isinstance(predictor, DistributionPredictor):
        forecasts: list[dict[str, Any]] = [
            {
                "predicted_close": f.point,
                "interval_80": {"lower": f.lower_80, "upper": f.upper_80},
                "interval_95": {"lower": f.lower_95, "upper": f.upper_95},
                "p_up": f.p_up,
            }
            for f in predictor.predict_distribution(windows)
        ]
    else:
        forecasts = [{"predicted_close": close} for close in predictor.predict(windows)]
    predictions: list[Event] = []
    for (candle, _), forecast in zip(ready, forecasts, strict=True):
        try:
            predictions.append(
                Prediction(
                    symbol=candle.symbol,
                    interval=candle.interval,
                    based_on=BasedOn(close_time=candle.close_time, close=candle.close),
                    target_time=candle.close_time + interval_delta(candle.interval),
                    model=predictor.model,
                    skill=predictor.skill,
                    **forecast,
                )
            )
        except ValueError as error:  # a non-finite or non-positive number from the model
            log.error(
                "predictor returned an unusable forecast",
                extra={"symbol": candle.symbol, "forecast": repr(forecast), "error": str(error)},
            )
    return predictions


async def handle(events: list[Event], deps: InferenceDeps) -> list[Event]:
    return await handle_candles([e for e in events if isinstance(e, Candle)], deps)
