"""Notifications beyond email: price alerts and lifecycle changes sent to webhooks, Telegram
and Discord.

One port, ``Notifier``: ``notify`` hands a notification to every configured channel (and to
an alert's own webhook) and never raises. ``ChannelNotifier`` implements it over channels,
each a thin adapter that makes one HTTP request (``notify_http``): the channels run side by
side, each with its own bounded retries, exponential backoff and a timeout per attempt, so a
channel that hangs or fails never holds up the others for longer than its retries last. A
delivery that still fails after them is logged and counted
(``cryptocast_notifications_total{channel,outcome}``) and dropped: the message is acked.
Handing it back to the bus would send it again to the channels that did take it, and a
receiver that is down for hours would cycle its messages into the dead-letter queue.

Webhook bodies are signed: ``X-CryptoCast-Signature: sha256=<hex>`` is the HMAC-SHA256, with
the shared secret, of ``<X-CryptoCast-Timestamp>.<raw body>``; a receiver recomputes it and
refuses a timestamp too far from its clock, so a captured request cannot be replayed later
(``verify_signature`` is the receiver's side).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from cryptocast_common.events import Candle, ModelChange, iso_utc

if TYPE_CHECKING:  # for annotations only: alerts imports this module for the text
    from cryptocast_gateway.alerts import Alert

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CryptoCast-Signature"
TIMESTAMP_HEADER = "X-CryptoCast-Timestamp"
DELIVERY_HEADER = "X-CryptoCast-Delivery"
Kind = Literal["price_alert", "model_change"]
Outcome = Literal["delivered", "failed", "refused"]


@dataclass(frozen=True)
class Notification:
    """What every channel is given: ``id`` is stable across redeliveries (receivers dedupe by
    it), ``title`` and ``text`` are for people, ``data`` for programs."""

    id: str
    kind: Kind
    title: str
    text: str
    data: dict[str, Any]
    occurred_at: datetime

    @property
    def message(self) -> str:
        """The chat text: title, then the details."""
        return f"{self.title}\n{self.text}"

    def payload(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "id": self.id,
            "type": self.kind,
            "title": self.title,
            "text": self.text,
            "occurred_at": iso_utc(self.occurred_at),
            "data": self.data,
        }

    def body(self) -> bytes:
        return json.dumps(self.payload(), separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class WebhookTarget:
    """An alert's own webhook and the secret its body is signed with."""

    url: str
    secret: str = field(repr=False)


class Notifier(Protocol):
    @property
    def broadcasts(self) -> bool:
        """Whether any channel is configured globally (an alert without a webhook of its own
        reaches someone)."""
        ...

    async def notify(
        self, notification: Notification, webhook: WebhookTarget | None = None
    ) -> None:
        """Deliver to every global channel and to ``webhook``; never raises."""
        ...


@dataclass
class RecordingNotifier:
    """The in-memory fake: keeps what it was asked to deliver."""

    broadcasts: bool = True
    sent: list[tuple[Notification, WebhookTarget | None]] = field(default_factory=list)

    async def notify(
        self, notification: Notification, webhook: WebhookTarget | None = None
    ) -> None:
        self.sent.append((notification, webhook))


class Channel(Protocol):
    """One destination: ``send`` makes one attempt and raises if it did not get through."""

    name: str  # the metric label: webhook, telegram, discord, alert_webhook

    async def send(self, notification: Notification) -> None: ...


class PermanentFailure(Exception):
    """An answer that another attempt would not change (a 4xx other than 408 and 429, or a
    target refused as private): not retried."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, each bounded by ``timeout_seconds``; the n-th retry waits
    ``base_seconds * 2**(n-1)``, at most ``max_seconds``."""

    attempts: int = 4
    base_seconds: float = 1.0
    max_seconds: float = 30.0
    timeout_seconds: float = 10.0

    def delay(self, retry: int) -> float:
        return min(self.max_seconds, self.base_seconds * 2 ** (retry - 1))


Sleep = Callable[[float], Awaitable[None]]
Count = Callable[[str, Outcome], None]


class ChannelNotifier:
    """Delivers to channels side by side, each with its retries; counts every outcome."""

    def __init__(
        self,
        channels: Sequence[Channel],
        webhook_for: Callable[[WebhookTarget], Channel] | None,
        policy: RetryPolicy,
        count: Count,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.channels = list(channels)
        self.webhook_for = webhook_for  # None: alerts' own webhooks are not delivered
        self.policy, self.count, self.sleep = policy, count, sleep

    @property
    def broadcasts(self) -> bool:
        return bool(self.channels)

    async def notify(
        self, notification: Notification, webhook: WebhookTarget | None = None
    ) -> None:
        channels = list(self.channels)
        if webhook is not None and self.webhook_for is not None:
            channels.append(self.webhook_for(webhook))
        await asyncio.gather(*(self._deliver(channel, notification) for channel in channels))

    async def _deliver(self, channel: Channel, notification: Notification) -> None:
        policy = self.policy
        for attempt in range(1, policy.attempts + 1):
            try:
                async with asyncio.timeout(policy.timeout_seconds):
                    await channel.send(notification)
            except PermanentFailure as error:
                return self._give_up(channel, notification, attempt, error, "refused")
            except Exception as error:
                if attempt == policy.attempts:
                    return self._give_up(channel, notification, attempt, error, "failed")
                log.info(
                    "notification attempt failed, retrying",
                    extra={
                        "channel": channel.name,
                        "notification": notification.id,
                        "attempt": attempt,
                        "error": repr(error),
                    },
                )
                await self.sleep(policy.delay(attempt))
            else:
                self.count(channel.name, "delivered")
                return None
        return None

    def _give_up(
        self,
        channel: Channel,
        notification: Notification,
        attempts: int,
        error: Exception,
        outcome: Outcome,
    ) -> None:
        self.count(channel.name, outcome)
        log.warning(
            "notification not delivered",
            extra={
                "channel": channel.name,
                "notification": notification.id,
                "attempts": attempts,
                "outcome": outcome,
                "error": repr(error),
            },
        )


def notification_counter(registry: CollectorRegistry) -> Count:
    """``cryptocast_notifications_total{channel,outcome}`` in the gateway's registry; outcome
    is delivered, failed (gave up after the retries) or refused (not retried)."""
    counter = Counter(
        "cryptocast_notifications",
        "Notifications by channel and outcome",
        ["channel", "outcome"],
        registry=registry,
    )
    return lambda channel, outcome: counter.labels(channel, outcome).inc()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-CryptoCast-Signature`` value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float | None = None,
    tolerance_seconds: float = 300,
) -> bool:
    """A receiver's check: the signature matches and the timestamp is within tolerance."""
    if not timestamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def signed_headers(secret: bytes, notification: Notification, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: notification.id,
    }


def alert_notification(alert: Alert, candle: Candle, title: str) -> Notification:
    return Notification(
        id=f"alert:{alert.id}:{candle.event_id}",
        kind="price_alert",
        title=title,
        text=f"{alert.symbol} closed at ${candle.close:,.4f}, {alert.direction} the threshold "
        f"of ${alert.threshold:,.4f}. The alert is now switched off.",
        data={
            "alert_id": alert.id,
            "symbol": alert.symbol,
            "direction": alert.direction,
            "threshold": alert.threshold,
            "price": candle.close,
            "candle_id": candle.event_id,
            "interval": candle.interval,
            "close_time": iso_utc(candle.close_time),
        },
        occurred_at=candle.close_time,
    )


_CHANGE_TITLES = {
    "promoted": "{model} promoted to champion{over}",
    "demoted": "champion {previous} demoted, {model} serves instead",
    "gate_opened": "gate opened: {model} serves its own forecast",
    "gate_closed": "gate closed: no change is served instead of {model}",
    "refused": "{model} refused: it could not be loaded",
    "registered": "{model} registered as a challenger",
}


def change_notification(change: ModelChange) -> Notification:
    template = _CHANGE_TITLES.get(change.kind, "{kind} {model}")
    title = template.format(
        model=change.model,
        previous=change.previous or "(none)",
        over=f" over {change.previous}" if change.previous else "",
        kind=change.kind,
    )
    lines = [change.reason] if change.reason else []
    if change.evidence is not None:
        e = change.evidence
        ratio = "n/a" if e.mae_ratio is None else f"{e.mae_ratio:.4f}"
        dm = "n/a" if e.dm is None else f"{e.dm:+.2f}"
        lines.append(f"Evidence: {e.n} verdicts, MAE ratio {ratio}, DM {dm} against {e.against}.")
    lines.append(f"By {change.by} at {iso_utc(change.decided_at)}.")
    return Notification(
        id=change.event_id,
        kind="model_change",
        title=f"CryptoCast {change.symbol} {change.interval}: {title}",
        text="\n".join(lines),
        data=change.model_dump(mode="json"),
        occurred_at=change.decided_at,
    )


class NotificationLog(Protocol):
    """Which lifecycle notifications went out: the verifier repeats a change with the same
    event id to replicas that missed it, and nobody wants to read it twice."""

    async def seen(self, key: str) -> bool: ...

    async def record(self, key: str) -> None: ...


class InMemoryNotificationLog:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def seen(self, key: str) -> bool:
        return key in self.keys

    async def record(self, key: str) -> None:
        self.keys.add(key)


class MongoNotificationLog:
    """Shared by the replicas: a change is told once whichever replica takes it."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._sent = db["notifications_sent"]

    async def seen(self, key: str) -> bool:
        return await self._sent.find_one({"_id": key}) is not None

    async def record(self, key: str) -> None:
        with contextlib.suppress(DuplicateKeyError):  # another replica told it just now
            await self._sent.insert_one({"_id": key, "at": datetime.now(UTC)})


def check_webhook_url(url: str, allow_http: bool, allow_private: bool) -> str:
    """An alert's webhook as given in ``POST /alert``, or ValueError saying what is wrong:
    https (http only if allowed), a host, no credentials, and unless allowed no loopback,
    private, link-local or otherwise non-public address literal or ``localhost``. Names are
    resolved and checked again when the webhook is called (``notify_http``)."""
    if len(url) > 2048:
        raise ValueError("webhook must be at most 2048 characters")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise ValueError(f"webhook must be an {' or '.join(schemes)} URL")
    try:
        host, _ = parts.hostname, parts.port  # port: a bad one raises ValueError
    except ValueError:
        raise ValueError("webhook has an invalid port") from None
    if not host or parts.username is not None or parts.password is not None:
        raise ValueError("webhook must name a host, without credentials")
    if not allow_private and not public_host(host):
        raise ValueError("webhook must not point at a private, loopback or local address")
    return url


def public_host(host: str) -> bool:
    """False for ``localhost`` and for a non-public address literal; True for other names."""
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name: checked once resolved
    return public_address(address)


def public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
