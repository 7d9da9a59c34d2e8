"""Every event is persisted once (the replicas share that queue); candles are checked
against price alerts on a queue of their own, so a slow mail server never holds up storing
events; lifecycle changes are told to the notification channels on another (a slow webhook
holds up neither); every replica sees every prediction and verification on a queue of its
own, to keep the latest per coin in memory and feed its WebSocket clients."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cryptocast_common.events import CoinAdded, Event, ModelChange, Prediction
from cryptocast_gateway.alert_mail import Mailer
from cryptocast_gateway.alert_store import AlertStore
from cryptocast_gateway.alerts import check_alerts
from cryptocast_gateway.notify import NotificationLog, Notifier, change_notification
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
    events: Sequence[Event],
    alerts: AlertStore,
    mailer: Mailer | None,
    metrics: GatewayMetrics,
    notifier: Notifier | None = None,
) -> list[Event]:
    """A mail failure raises: the bus retries these candles, and only on this queue. The
    other channels retry on their own and never raise."""
    await check_alerts(events, alerts, mailer, metrics.alerts_sent.inc, notifier)
    return []


async def notify_changes(
    events: Sequence[Event], notifier: Notifier, told: NotificationLog, kinds: Collection[str]
) -> list[Event]:
    """Tell the channels about each lifecycle change of those ``kinds``, once per event id
    (a repeated change is not told again). Never raises: a delivery that keeps failing is
    logged and counted by the notifier, and the change acked."""
    for event in events:
        if (
            isinstance(event, ModelChange)
            and event.kind in kinds
            and not await told.seen(event.event_id)
        ):
            await notifier.notify(change_notification(event))
            await told.record(event.event_id)
    return []


async def follow_live(events: Sequence[Event], state: GatewayState) -> list[Event]:
    """This replica's own view: the coins served, the newest prediction per coin, and the
    stream."""
    for event in events:
        if isinstance(event, Prediction) and event.role in SERVED_ROLES:
            state.latest.update(event)
        elif isinstance(event, CoinAdded):
            state.serve(event.symbol)
    state.hub.publish(events)
    return []
