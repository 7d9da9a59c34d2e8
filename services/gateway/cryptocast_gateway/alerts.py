"""Price alerts, as the original had them: an email once a coin's price crosses a threshold.

Candles reach the checks on a queue of their own, so a slow or failing SMTP server never
holds up storing events. Each closed candle is checked against the alerts of its coin. An
alert that fires is first claimed for that candle (active → triggered by the candle, in one
conditional update, so two gateway replicas never both send it), then mailed, then marked
sent. A redelivered candle claims the same alert again only while its email is unsent, so
a crash before the send is made good and a redelivery after it sends nothing. If the mail
cannot be sent the claim is released and the error raised: the bus retries the candle.

After the email, the alert goes to the notification channels (webhooks, Telegram, Discord)
and to the alert's own webhook, if it has one (``notify``); those deliveries retry on their
own and never raise. An alert that could reach nobody (no SMTP, no channel, no webhook of
its own) is left active, unchecked.

This module holds the alert and that check; the stores are in ``alert_store``, the mailers
and the email's text in ``alert_mail``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from cryptocast_common.events import Candle, Event
from cryptocast_gateway.alert_mail import alert_email, alert_subject
from cryptocast_gateway.notify import Notifier, WebhookTarget, alert_notification

if TYPE_CHECKING:  # for annotations only: both modules import Alert from this one
    from cryptocast_gateway.alert_mail import Mailer
    from cryptocast_gateway.alert_store import AlertStore

log = logging.getLogger(__name__)
Direction = Literal["above", "below"]


@dataclass(frozen=True)
class Alert:
    email: str
    symbol: str
    threshold: float
    direction: Direction
    active: bool = True
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    triggered_by: str | None = None  # the candle that fired it
    sent_at: datetime | None = None  # when its email went out
    webhook: str | None = None  # a URL of its own that gets it as signed JSON
    webhook_secret: str | None = field(default=None, repr=False)  # signs that JSON

    def fires_at(self, price: float) -> bool:
        return price >= self.threshold if self.direction == "above" else price <= self.threshold

    @property
    def webhook_target(self) -> WebhookTarget | None:
        if self.webhook is None or self.webhook_secret is None:
            return None
        return WebhookTarget(self.webhook, self.webhook_secret)


async def check_alerts(
    events: Sequence[Event],
    store: AlertStore,
    mailer: Mailer | None,
    on_sent: Callable[[], None],
    notifier: Notifier | None = None,
) -> None:
    """Mail and notify every due alert the newest candle of each coin crosses, calling
    ``on_sent`` for each email. Raises what the mailer raised, after releasing that alert,
    so the candles come back; the alerts sent before it stay sent."""
    newest: dict[str, Candle] = {}
    for event in events:
        if isinstance(event, Candle) and (
            event.symbol not in newest or event.close_time > newest[event.symbol].close_time
        ):
            newest[event.symbol] = event
    if not newest:
        return
    for alert in await store.due({symbol: c.event_id for symbol, c in newest.items()}):
        candle = newest[alert.symbol]
        reachable = mailer is not None or (
            notifier is not None and (notifier.broadcasts or alert.webhook is not None)
        )
        if (
            not reachable
            or not alert.fires_at(candle.close)
            or not await store.claim(alert.id, candle.event_id)
        ):
            continue
        if mailer is not None:
            try:
                await mailer.send(alert_email(alert, candle.close))
            except Exception:
                await store.release(alert.id, candle.event_id)
                raise
        if notifier is not None:
            notification = alert_notification(alert, candle, alert_subject(alert))
            await notifier.notify(notification, alert.webhook_target)
        await store.mark_sent(alert.id)
        if mailer is not None:
            on_sent()
        log.info(
            "alert sent", extra={"alert": alert.id, "symbol": alert.symbol, "price": candle.close}
        )
