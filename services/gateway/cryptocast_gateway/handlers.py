"""Every event is persisted once (the replicas share that queue); candles are checked
against price alerts on a queue of their own, so a slow mail server never holds up storing
events; every replica sees every prediction and verification on a queue of its own, to keep
the latest per coin in memory and feed its WebSocket clients."""

from __future__ import annotations

from collections.abc import Sequence

from cryptocast_common.events import Event, Prediction
from cryptocast_gateway.alert_mail import Mailer
from cryptocast_gateway.alert_store import AlertStore
from cryptocast_gateway.alerts import check_alerts
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.state import GatewayState
from cryptocast_gateway.store import SERVED_ROLES


async def persist(events: Sequence[Event], state: GatewayState) -> list[Event]:
    """One bulk upsert per batch; the bus acks the batch only after it returns."""
    state.metrics.count(state.metrics.consumed, events)
    await state.store.upsert(events)
    state.metrics.count(state.metrics.persisted, events)
    return []


async def mail_alerts(
    events: Sequence[Event], alerts: AlertStore, mailer: Mailer, metrics: GatewayMetrics
) -> list[Event]:
    """A mail failure raises: the bus retries these candles, and only on this queue."""
    await check_alerts(events, alerts, mailer, metrics.alerts_sent.inc)
    return []


async def follow_live(events: Sequence[Event], state: GatewayState) -> list[Event]:
    """This replica's own view: the newest prediction per coin, and the stream."""
    for event in events:
        if isinstance(event, Prediction) and event.role in SERVED_ROLES:
            state.latest.update(event)
    state.hub.publish(events)
    return []
