"""Price alerts, as the original had them: an email once a coin's price crosses a threshold.

Candles reach the checks on a queue of their own, so a slow or failing SMTP server never
holds up storing events. Each closed candle is checked against the alerts of its coin. An
alert that fires is first claimed for that candle (active → triggered by the candle, in one
conditional update, so two gateway replicas never both send it), then mailed, then marked
sent. A redelivered candle claims the same alert again only while its email is unsent, so
a crash before the send is made good and a redelivery after it sends nothing. If the mail
cannot be sent the claim is released and the error raised: the bus retries the candle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import aiosmtplib
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.events import Candle, Event
from cryptocast_gateway.settings import GatewaySettings

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

    def fires_at(self, price: float) -> bool:
        return price >= self.threshold if self.direction == "above" else price <= self.threshold


class AlertStore(Protocol):
    async def add(self, alert: Alert) -> None: ...

    async def due(self, symbol: str, candle_id: str) -> list[Alert]:
        """The coin's active alerts, and those ``candle_id`` triggered whose email is unsent."""
        ...

    async def deactivate(self, email: str, symbol: str) -> int:
        """Deactivate that email's active alerts for the coin; how many there were."""
        ...

    async def claim(self, alert_id: str, candle_id: str) -> bool:
        """Mark the alert triggered by the candle if it is active, or already triggered by
        the same candle and unsent (the same write again); False otherwise."""
        ...

    async def mark_sent(self, alert_id: str) -> None: ...

    async def release(self, alert_id: str, candle_id: str) -> None:
        """Undo the candle's unsent claim: the alert is active again."""
        ...


def _claimable(alert: Alert, candle_id: str) -> bool:
    return alert.active or (alert.triggered_by == candle_id and alert.sent_at is None)


class InMemoryAlertStore:
    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    async def add(self, alert: Alert) -> None:
        self.alerts[alert.id] = alert

    async def due(self, symbol: str, candle_id: str) -> list[Alert]:
        return [a for a in self.alerts.values() if a.symbol == symbol and _claimable(a, candle_id)]

    def _set(self, alert_id: str, **changes: Any) -> None:
        self.alerts[alert_id] = replace(self.alerts[alert_id], **changes)

    async def deactivate(self, email: str, symbol: str) -> int:
        matching = [
            a.id
            for a in self.alerts.values()
            if (a.email, a.symbol, a.active) == (email, symbol, True)
        ]
        for alert_id in matching:
            self._set(alert_id, active=False)
        return len(matching)

    async def claim(self, alert_id: str, candle_id: str) -> bool:
        if not _claimable(self.alerts[alert_id], candle_id):
            return False
        self._set(alert_id, active=False, triggered_by=candle_id)
        return True

    async def mark_sent(self, alert_id: str) -> None:
        self._set(alert_id, sent_at=datetime.now(UTC))

    async def release(self, alert_id: str, candle_id: str) -> None:
        if _claimable(self.alerts[alert_id], candle_id):
            self._set(alert_id, active=True, triggered_by=None)


class MongoAlertStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._alerts = db["alerts"]

    async def ensure_indexes(self) -> None:
        await self._alerts.create_index([("symbol", 1), ("active", 1)])

    async def add(self, alert: Alert) -> None:
        document = asdict(alert)
        document["_id"] = document.pop("id")
        await self._alerts.insert_one(document)

    @staticmethod
    def _claimable(candle_id: str) -> dict[str, Any]:
        return {"$or": [{"active": True}, {"triggered_by": candle_id, "sent_at": None}]}

    async def due(self, symbol: str, candle_id: str) -> list[Alert]:
        alerts = []
        async for doc in self._alerts.find({"symbol": symbol, **self._claimable(candle_id)}):
            doc["id"] = doc.pop("_id")
            doc["active"] = bool(doc["active"])  # some servers hand back stored booleans as 0/1
            alerts.append(Alert(**doc))
        return alerts

    async def deactivate(self, email: str, symbol: str) -> int:
        result = await self._alerts.update_many(
            {"email": email, "symbol": symbol, "active": True}, {"$set": {"active": False}}
        )
        return result.modified_count

    async def claim(self, alert_id: str, candle_id: str) -> bool:
        result = await self._alerts.update_one(
            {"_id": alert_id, **self._claimable(candle_id)},
            {"$set": {"active": False, "triggered_by": candle_id}},
        )
        return result.matched_count == 1  # a repeated claim matches without modifying

    async def mark_sent(self, alert_id: str) -> None:
        await self._alerts.update_one({"_id": alert_id}, {"$set": {"sent_at": datetime.now(UTC)}})

    async def release(self, alert_id: str, candle_id: str) -> None:
        await self._alerts.update_one(
            {"_id": alert_id, "triggered_by": candle_id, "sent_at": None},
            {"$set": {"active": True, "triggered_by": None}},
        )


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: GatewaySettings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        message["From"] = s.smtp_sender
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=30,
        )


def alert_email(alert: Alert, price: float) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = f"<alert-{alert.id}@cryptocast>"  # lets mail clients drop a copy
    message["To"] = alert.email
    message["Subject"] = (
        f"CryptoCast Alert: {alert.symbol} is {alert.direction} ${alert.threshold:,.2f}"
    )
    message.set_content(
        f"{alert.symbol} closed at ${price:,.4f}, {alert.direction} your threshold of "
        f"${alert.threshold:,.4f}.\n\nThis alert is now switched off; set a new one whenever "
        "you like.\n\nCryptoCast\n"
    )
    return message


async def check_alerts(
    events: Sequence[Event], store: AlertStore, mailer: Mailer, on_sent: Callable[[], None]
) -> None:
    """Mail every due alert the newest candle of each coin crosses, calling ``on_sent`` for
    each. Raises what the mailer raised, after releasing that alert, so the candles come
    back; the alerts mailed before it stay sent."""
    newest: dict[str, Candle] = {}
    for event in events:
        if isinstance(event, Candle) and (
            event.symbol not in newest or event.close_time > newest[event.symbol].close_time
        ):
            newest[event.symbol] = event
    for symbol, candle in newest.items():
        for alert in await store.due(symbol, candle.event_id):
            if not alert.fires_at(candle.close) or not await store.claim(alert.id, candle.event_id):
                continue
            try:
                await mailer.send(alert_email(alert, candle.close))
            except Exception:
                await store.release(alert.id, candle.event_id)
                raise
            await store.mark_sent(alert.id)
            on_sent()
            log.info(
                "alert sent", extra={"alert": alert.id, "symbol": symbol, "price": candle.close}
            )
