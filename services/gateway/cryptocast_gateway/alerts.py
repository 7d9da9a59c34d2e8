"""Price alerts, as the original had them: an email once a coin's price crosses a threshold.

Each closed candle is checked against the active alerts of its coin. An alert that fires is
first claimed (active → inactive in one conditional update, so two gateway replicas never
both send it), then mailed; if the mail cannot be sent the claim is released and the next
candle tries again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
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

    def fires_at(self, price: float) -> bool:
        return price >= self.threshold if self.direction == "above" else price <= self.threshold


class AlertStore(Protocol):
    async def add(self, alert: Alert) -> None: ...

    async def active_for(self, symbol: str) -> list[Alert]: ...

    async def deactivate(self, email: str, symbol: str) -> int:
        """Deactivate that email's active alerts for the coin; how many there were."""
        ...

    async def claim(self, alert_id: str) -> bool:
        """Deactivate one alert if it is still active; False if someone else did first."""
        ...

    async def release(self, alert_id: str) -> None: ...


class InMemoryAlertStore:
    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    async def add(self, alert: Alert) -> None:
        self.alerts[alert.id] = alert

    async def active_for(self, symbol: str) -> list[Alert]:
        return [a for a in self.alerts.values() if a.symbol == symbol and a.active]

    def _set(self, alert_id: str, active: bool) -> None:
        self.alerts[alert_id] = replace(self.alerts[alert_id], active=active)

    async def deactivate(self, email: str, symbol: str) -> int:
        matching = [a.id for a in await self.active_for(symbol) if a.email == email]
        for alert_id in matching:
            self._set(alert_id, False)
        return len(matching)

    async def claim(self, alert_id: str) -> bool:
        if not self.alerts[alert_id].active:
            return False
        self._set(alert_id, False)
        return True

    async def release(self, alert_id: str) -> None:
        self._set(alert_id, True)


class MongoAlertStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._alerts = db["alerts"]

    async def ensure_indexes(self) -> None:
        await self._alerts.create_index([("symbol", 1), ("active", 1)])

    async def add(self, alert: Alert) -> None:
        document = asdict(alert)
        document["_id"] = document.pop("id")
        await self._alerts.insert_one(document)

    async def active_for(self, symbol: str) -> list[Alert]:
        alerts = []
        async for doc in self._alerts.find({"symbol": symbol, "active": True}):
            doc["id"] = doc.pop("_id")
            doc["active"] = bool(doc["active"])  # some servers hand back stored booleans as 0/1
            alerts.append(Alert(**doc))
        return alerts

    async def deactivate(self, email: str, symbol: str) -> int:
        result = await self._alerts.update_many(
            {"email": email, "symbol": symbol, "active": True}, {"$set": {"active": False}})
        return result.modified_count

    async def claim(self, alert_id: str) -> bool:
        result = await self._alerts.update_one({"_id": alert_id, "active": True},
                                               {"$set": {"active": False}})
        return result.modified_count == 1

    async def release(self, alert_id: str) -> None:
        await self._alerts.update_one({"_id": alert_id}, {"$set": {"active": True}})


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
            message, hostname=s.smtp_host, port=s.smtp_port,
            use_tls=s.smtp_security == "tls", start_tls=s.smtp_security == "starttls",
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=30)


def alert_email(alert: Alert, price: float) -> EmailMessage:
    message = EmailMessage()
    message["To"] = alert.email
    message["Subject"] = (f"CryptoCast Alert: {alert.symbol} is {alert.direction} "
                          f"${alert.threshold:,.2f}")
    message.set_content(
        f"{alert.symbol} closed at ${price:,.4f}, {alert.direction} your threshold of "
        f"${alert.threshold:,.4f}.\n\nThis alert is now switched off; set a new one whenever "
        "you like.\n\nCryptoCast\n")
    return message


async def check_alerts(events: Sequence[Event], store: AlertStore, mailer: Mailer) -> int:
    """Mail every active alert the newest candle of each coin crosses; how many were sent."""
    newest: dict[str, Candle] = {}
    for event in events:
        if isinstance(event, Candle) and (event.symbol not in newest
                                          or event.close_time > newest[event.symbol].close_time):
            newest[event.symbol] = event
    sent = 0
    for symbol, candle in newest.items():
        for alert in await store.active_for(symbol):
            if not alert.fires_at(candle.close) or not await store.claim(alert.id):
                continue
            try:
                await mailer.send(alert_email(alert, candle.close))
            except (aiosmtplib.SMTPException, OSError) as error:
                await store.release(alert.id)
                log.warning("alert email failed; the alert stays active",
                            extra={"alert": alert.id, "error": str(error)})
                continue
            sent += 1
            log.info("alert sent", extra={"alert": alert.id, "symbol": symbol,
                                          "price": candle.close})
    return sent
