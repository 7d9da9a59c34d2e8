"""Notifications beyond email, with fakes: their text and payloads, the webhook signature,
the retry policy on a fake clock, the channels' requests (httpx's mock transport), which
alerts and lifecycle changes are told, and the per-alert webhook of POST /alert."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.events import Evidence, ModelChange, ModelRef
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.alert_store import InMemoryAlertStore
from cryptocast_gateway.alerts import Alert, check_alerts
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.handlers import notify_changes
from cryptocast_gateway.notify import (
    ChannelNotifier,
    InMemoryNotificationLog,
    Notification,
    Outcome,
    PermanentFailure,
    RecordingNotifier,
    RetryPolicy,
    WebhookTarget,
    alert_notification,
    change_notification,
    check_webhook_url,
    sign,
    verify_signature,
)
from cryptocast_gateway.notify_http import (
    DeliveryError,
    DiscordChannel,
    TelegramChannel,
    WebhookChannel,
)
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from tests.factories import candle

DECIDED = datetime(2026, 8, 2, 12, tzinfo=UTC)


def change(kind: str = "promoted", symbol: str = "BTC", **extra: Any) -> ModelChange:
    fields: dict[str, Any] = dict(
        symbol=symbol,
        interval="4h",
        kind=kind,
        model=ModelRef(name="dist-4h", version="2"),
        previous=ModelRef(name="dist-4h", version="1"),
        evidence=Evidence(n=120, mae_ratio=0.9512, dm=-2.31, against="champion"),
        by="policy",
        reason="significantly more accurate than the champion",
        decided_at=DECIDED,
    )
    fields.update(extra)
    return ModelChange(**fields)


def note(id: str = "n1") -> Notification:
    return Notification(id, "model_change", "title", "text", {"a": 1}, DECIDED)


# --- text and payloads ---


def test_an_alert_notification_says_what_crossed_and_keeps_a_stable_id() -> None:
    alert = Alert("a@example.com", "BTC", 70_000.0, "above")
    crossing = candle(0, close=71_234.5)
    n = alert_notification(alert, crossing, "CryptoCast Alert: BTC is above $70,000.00")
    assert n.id == f"alert:{alert.id}:{crossing.event_id}"
    assert n.message.startswith("CryptoCast Alert: BTC is above $70,000.00\nBTC closed at $71,23")
    payload = json.loads(n.body())
    assert payload["type"] == "price_alert" and payload["id"] == n.id
    assert payload["data"]["price"] == 71_234.5 and payload["data"]["threshold"] == 70_000.0
    assert "a@example.com" not in n.body().decode()  # the address stays with the email


@pytest.mark.parametrize(
    ("kind", "title"),
    [
        ("promoted", "dist-4h@2 promoted to champion over dist-4h@1"),
        ("demoted", "champion dist-4h@1 demoted, dist-4h@2 serves instead"),
        ("gate_opened", "gate opened: dist-4h@2 serves its own forecast"),
        ("gate_closed", "gate closed: no change is served instead of dist-4h@2"),
        ("refused", "dist-4h@2 refused: it could not be loaded"),
        ("pinned", "pinned dist-4h@2"),
    ],
)
def test_a_change_notification_names_the_change(kind: str, title: str) -> None:
    event = change(kind)
    n = change_notification(event)
    assert n.title == f"CryptoCast BTC 4h: {title}"
    assert n.id == event.event_id and n.kind == "model_change"
    assert "Evidence: 120 verdicts, MAE ratio 0.9512, DM -2.31 against champion." in n.text
    assert json.loads(n.body())["data"]["kind"] == kind


# --- signature ---


def test_a_signature_verifies_and_nothing_else_does() -> None:
    body, now = b'{"id":"x"}', 1_754_000_000
    signature = sign(b"s3cret", now, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_signature(b"s3cret", str(now), signature, body, now=now + 10)
    assert not verify_signature(b"other", str(now), signature, body, now=now)
    assert not verify_signature(b"s3cret", str(now), signature, body + b" ", now=now)
    assert not verify_signature(b"s3cret", str(now + 1), signature, body, now=now)  # signed too
    assert not verify_signature(b"s3cret", str(now), signature, body, now=now + 301)  # replay
    assert not verify_signature(b"s3cret", "soon", signature, body, now=now)


# --- retry policy on a fake clock ---


class FakeClock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class ScriptedChannel:
    """Raises the scripted errors in turn, then delivers."""

    def __init__(self, name: str, *errors: Exception, hang: bool = False) -> None:
        self.name, self.errors, self.hang = name, list(errors), hang
        self.attempts = 0
        self.delivered: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(notification)


def notifier_over(
    *channels: ScriptedChannel, policy: RetryPolicy | None = None
) -> tuple[ChannelNotifier, FakeClock, list[tuple[str, Outcome]]]:
    clock, counted = FakeClock(), []
    notifier = ChannelNotifier(
        channels,
        None,
        policy or RetryPolicy(attempts=4, base_seconds=1.0, max_seconds=3.0),
        lambda channel, outcome: counted.append((channel, outcome)),
        sleep=clock.sleep,
    )
    return notifier, clock, counted


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=6, base_seconds=0.5, max_seconds=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_a_channel_that_fails_twice_is_delivered_on_the_third_attempt() -> None:
    flaky = ScriptedChannel("webhook", OSError("refused"), DeliveryError("HTTP 503"))
    notifier, clock, counted = notifier_over(flaky)
    await notifier.notify(note())
    assert (flaky.attempts, len(flaky.delivered)) == (3, 1)
    assert clock.slept == [1.0, 2.0]
    assert counted == [("webhook", "delivered")]


async def test_a_channel_that_always_fails_gives_up_without_raising_or_stopping_others() -> None:
    down = ScriptedChannel("discord", *(OSError("down") for _ in range(10)))
    fine = ScriptedChannel("telegram")
    notifier, clock, counted = notifier_over(down, fine)
    await notifier.notify(note())  # does not raise
    assert down.attempts == 4 and clock.slept == [1.0, 2.0, 3.0]
    assert len(fine.delivered) == 1
    assert sorted(counted) == [("discord", "failed"), ("telegram", "delivered")]


async def test_a_permanent_refusal_is_not_retried() -> None:
    gone = ScriptedChannel("webhook", PermanentFailure("HTTP 404"))
    notifier, clock, counted = notifier_over(gone)
    await notifier.notify(note())
    assert gone.attempts == 1 and clock.slept == [] and counted == [("webhook", "refused")]


async def test_an_attempt_that_hangs_is_cut_by_the_timeout() -> None:
    hanging = ScriptedChannel("webhook", hang=True)
    fine = ScriptedChannel("discord")
    policy = RetryPolicy(attempts=2, base_seconds=0, timeout_seconds=0.05)
    notifier, _, counted = notifier_over(hanging, fine, policy=policy)
    await asyncio.wait_for(notifier.notify(note()), 2)
    assert hanging.attempts == 2 and len(fine.delivered) == 1
    assert sorted(counted) == [("discord", "delivered"), ("webhook", "failed")]


async def test_an_alerts_own_webhook_is_a_channel_of_that_notification_only() -> None:
    made: list[WebhookTarget] = []

    def webhook_for(target: WebhookTarget) -> ScriptedChannel:
        made.append(target)
        return ScriptedChannel("alert_webhook")

    notifier = ChannelNotifier([], webhook_for, RetryPolicy(), lambda c, o: None)
    assert not notifier.broadcasts
    await notifier.notify(note(), WebhookTarget("https://hooks.example.com/x", "k"))
    await notifier.notify(note())
    assert made == [WebhookTarget("https://hooks.example.com/x", "k")]


# --- the channels' requests ---


def recording_client(status: int = 200) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json={"ok": status < 300})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer)), requests


async def test_the_webhook_posts_the_signed_raw_body() -> None:
    client, requests = recording_client()
    async with client:
        await WebhookChannel(client, "https://hooks.example.com/in", b"k").send(note())
    (request,) = requests
    body = request.content
    assert json.loads(body)["id"] == "n1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-cryptocast-delivery"] == "n1"
    timestamp = request.headers["x-cryptocast-timestamp"]
    assert request.headers["x-cryptocast-signature"] == sign(b"k", int(timestamp), body)


async def test_telegram_and_discord_get_their_own_shapes() -> None:
    client, requests = recording_client()
    async with client:
        await TelegramChannel(client, "http://tg.test/", "123:abc", "-100").send(note())
        await DiscordChannel(client, "https://discord.test/api/webhooks/1/t").send(note())
    telegram, discord = requests
    assert str(telegram.url) == "http://tg.test/bot123:abc/sendMessage"
    assert json.loads(telegram.content) == {
        "chat_id": "-100",
        "text": "title\ntext",
        "disable_web_page_preview": True,
    }
    assert json.loads(discord.content) == {
        "content": "title\ntext",
        "allowed_mentions": {"parse": []},
    }


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, DeliveryError), (429, DeliveryError), (404, PermanentFailure), (302, PermanentFailure)],
)
async def test_answers_say_whether_to_retry_and_never_show_the_token(
    status: int, error: type[Exception]
) -> None:
    client, _ = recording_client(status)
    async with client:
        with pytest.raises(error) as raised:
            await TelegramChannel(client, "http://tg.test", "123:secret-token", "1").send(note())
    assert "secret-token" not in repr(raised.value)


async def test_an_alert_webhook_to_a_private_address_is_refused_when_sent() -> None:
    client, requests = recording_client()
    async with client:
        for url in ("http://[::1]/hook", "http://10.1.2.3/hook", "http://localhost/hook"):
            channel = WebhookChannel(client, url, b"k", public_only=True)
            with pytest.raises(PermanentFailure):
                await channel.send(note())
    assert requests == []


# --- which alerts and changes are told ---


class FailingMailer:
    async def send(self, message: object) -> None:
        raise OSError("smtp down")


async def test_an_alert_with_a_webhook_is_notified_without_smtp() -> None:
    store, notifier = InMemoryAlertStore(), RecordingNotifier(broadcasts=False)
    hooked = Alert("a@example.com", "BTC", 100.0, "above", webhook="https://h.example/x")
    hooked = Alert(**{**hooked.__dict__, "webhook_secret": "k"})
    unreachable = Alert("b@example.com", "BTC", 100.0, "above")
    await store.add(hooked)
    await store.add(unreachable)
    for _ in range(2):  # a redelivered candle tells it once
        await check_alerts([candle(0, close=150.0)], store, None, lambda: None, notifier)
    ((notification, target),) = notifier.sent
    assert notification.kind == "price_alert" and target == WebhookTarget(
        "https://h.example/x", "k"
    )
    assert store.alerts[hooked.id].sent_at is not None
    assert store.alerts[unreachable.id].active  # nobody to tell: left as it was


async def test_a_failed_email_tells_no_channel_until_the_retry() -> None:
    store, notifier = InMemoryAlertStore(), RecordingNotifier()
    await store.add(Alert("a@example.com", "BTC", 100.0, "above"))
    with pytest.raises(OSError):
        await check_alerts([candle(0, close=150.0)], store, FailingMailer(), lambda: None, notifier)
    assert notifier.sent == []


async def test_lifecycle_changes_of_the_chosen_kinds_are_told_once() -> None:
    notifier, told = RecordingNotifier(), InMemoryNotificationLog()
    kinds = {"promoted", "gate_closed"}
    promoted = change("promoted")
    events = [promoted, change("pinned"), candle(0), change("gate_closed", symbol="ETH")]
    await notify_changes(events, notifier, told, kinds)
    await notify_changes([promoted], notifier, told, kinds)  # the verifier repeats it
    assert [n.id for n, _ in notifier.sent] == [promoted.event_id, events[3].event_id]


# --- per-alert webhooks in POST /alert, and settings ---


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://169.254.169.254/latest",
        "https://localhost:8000/x",
        "https://user:pw@hooks.example.com/x",
        "https:///x",
        "https://hooks.example.com:99999/x",
    ],
)
def test_unsafe_webhooks_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_webhook_url(url, allow_http=False, allow_private=False)


def test_settings_can_relax_the_webhook_checks_for_tests() -> None:
    assert check_webhook_url("https://hooks.example.com/x", False, False)
    assert check_webhook_url("http://127.0.0.1:9/x", allow_http=True, allow_private=True)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    bus = InMemoryBus()
    app = await bootstrap(
        CommonSettings(),
        GatewaySettings(),
        bus=bus,
        store=InMemoryEventStore(),
        alerts=InMemoryAlertStore(),
        serve_http=False,
    )
    await app.start()
    yield app
    await bus.close()
    await app.resources.close()


async def post_alert(gateway: Gateway, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.post("/alert", json=body)


BODY = {"email": "you@example.com", "coin": "btc", "threshold": 70000, "direction": "above"}


async def test_the_original_body_gets_the_original_answer(gateway: Gateway) -> None:
    response = await post_alert(gateway, BODY)
    assert response.content == b'{"message":"Alert created","status":"Success"}\n'
    (alert,) = gateway.state.alerts.alerts.values()  # type: ignore[attr-defined]
    assert alert.webhook is None and alert.webhook_secret is None


async def test_an_alert_with_a_webhook_answers_its_secret(gateway: Gateway) -> None:
    response = await post_alert(gateway, {**BODY, "webhook": "https://hooks.example.com/x"})
    answer = response.json()
    assert response.status_code == 200 and len(answer["webhook_secret"]) == 64
    (alert,) = gateway.state.alerts.alerts.values()  # type: ignore[attr-defined]
    assert alert.webhook_target == WebhookTarget(
        "https://hooks.example.com/x", answer["webhook_secret"]
    )
    assert answer["webhook_secret"] not in repr(alert)


@pytest.mark.parametrize(
    "webhook",
    ["https://10.0.0.7/x", "http://hooks.example.com/x", "https://localhost/x", 42, None, ""],
)
async def test_an_unsafe_webhook_is_a_400(gateway: Gateway, webhook: object) -> None:
    response = await post_alert(gateway, {**BODY, "webhook": webhook})
    assert response.status_code == 400 and "webhook" in response.json()["message"]
    assert gateway.state.alerts.alerts == {}  # type: ignore[attr-defined]


def test_webhooks_need_a_secret_and_lists_come_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        GatewaySettings(webhook_urls=["https://hooks.example.com/x"])
    with pytest.raises(ValidationError, match="unknown change kinds"):
        GatewaySettings(notify_changes=["promoted", "exploded"])
    monkeypatch.setenv(
        "CRYPTOCAST_GATEWAY_WEBHOOK_URLS", "https://a.example/x, https://b.example/y"
    )
    monkeypatch.setenv("CRYPTOCAST_GATEWAY_WEBHOOK_SECRET", "k")
    monkeypatch.setenv("CRYPTOCAST_GATEWAY_NOTIFY_CHANGES", "promoted,demoted")
    settings = GatewaySettings()
    assert settings.webhook_urls == ["https://a.example/x", "https://b.example/y"]
    assert settings.notify_changes == ["promoted", "demoted"]
