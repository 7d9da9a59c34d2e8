"""Predictions and candles in, verifications out.

A prediction whose target candle is already known is verified at once; otherwise it waits in
the store until that candle arrives. Nothing is deleted when a verification is emitted (the
handler's output is only published after it returns): a redelivered candle then re-emits the
same verification id, which is harmless, and old entries age out after ``retention``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptocast_common.events import Candle, Event, Prediction, interval_delta
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.store import VerifierStore


@dataclass
class VerifierDeps:
    store: VerifierStore
    tolerance_pct: float
    retention_candles: int


async def handle_prediction(prediction: Prediction, deps: VerifierDeps) -> list[Event]:
    actual = await deps.store.close_at(prediction.symbol, prediction.interval,
                                       prediction.target_time)
    if actual is None:
        await deps.store.add_pending(prediction)
        return []
    return [verify(prediction, actual, deps.tolerance_pct)]


async def handle_candle(candle: Candle, deps: VerifierDeps) -> list[Event]:
    await deps.store.save_close(candle)
    pending = await deps.store.pending_for(candle.symbol, candle.interval, candle.close_time)
    cutoff = candle.close_time - deps.retention_candles * interval_delta(candle.interval)
    await deps.store.forget_before(candle.symbol, candle.interval, cutoff)
    return [verify(p, candle.close, deps.tolerance_pct) for p in pending]


async def handle(events: Sequence[Event], deps: VerifierDeps) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, Prediction):
            out += await handle_prediction(event, deps)
        elif isinstance(event, Candle):
            out += await handle_candle(event, deps)
    return out
