"""Every event is persisted once (the replicas share that queue), and candles are checked
against price alerts there; every replica sees every prediction and verification on a queue
of its own, to keep the latest per coin in memory and feed its WebSocket clients."""

from __future__ import annotations

from collections.abc import Sequence

from cryptocast_common.events import Event, Prediction, Verification
from cryptocast_gateway.accuracy import by_model
from cryptocast_gateway.alerts import check_alerts
from cryptocast_gateway.state import GatewayState

RECENT_VERIFICATIONS = 100  # the accuracy gauges cover this many latest verdicts per symbol


async def persist(events: Sequence[Event], state: GatewayState) -> list[Event]:
    """One bulk upsert per batch; the bus acks the batch only after it returns."""
    state.metrics.count(state.metrics.consumed, events)
    await state.store.upsert(events)
    state.metrics.count(state.metrics.persisted, events)
    if state.mailer is not None:
        state.metrics.alerts_sent.inc(await check_alerts(events, state.alerts, state.mailer))
    verified = {(e.symbol, e.interval) for e in events if isinstance(e, Verification)}
    for symbol, interval in verified:
        recent = await state.store.page("verifications", symbol, interval, None, None, None,
                                        RECENT_VERIFICATIONS)
        for model, stats in by_model(recent).items():  # type: ignore[arg-type]
            for metric in ("within_2pct", "mase", "directional_accuracy"):
                value = stats[metric]  # type: ignore[literal-required]
                if value is not None:
                    state.metrics.accuracy.labels(symbol, model, metric).set(value)
    return []


async def follow_live(events: Sequence[Event], state: GatewayState) -> list[Event]:
    """This replica's own view: the newest prediction per coin, and the stream."""
    for event in events:
        if isinstance(event, Prediction):
            state.latest.update(event)
    state.hub.publish(events)
    return []
