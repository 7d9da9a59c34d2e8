"""Price alerts on a queue of their own: a slow or failing mail server never holds up
storing events, and one triggering sends one email however often its candle is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.alert_store import InMemoryAlertStore
from cryptocast_gateway.alerts import Alert, check_alerts
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from tests.factories import candle, prediction
from tests.waiting import eventually


class BlockingMailer:
    """An SMTP server that accepts the connection and answers only when the test ends."""

    def __init__(self) -> None:
        self.attempts = 0
        self.answer = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        self.attempts += 1
        await self.answer.wait()


class FailingMailer:
    """An SMTP server that refuses ``failures`` times, then delivers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        self.sent.append(message)


async def started(mailer: object) -> AsyncIterator[Gateway]:
    bus = InMemoryBus(retry_delay_seconds=0.01)
    gateway = await bootstrap(
        CommonSettings(),
        GatewaySettings(smtp_host="smtp.invalid"),
        bus=bus,
        store=InMemoryEventStore(),
        alerts=InMemoryAlertStore(),
        serve_http=False,
    )
    gateway.state.mailer = mailer  # type: ignore[assignment]
    await gateway.start()
    yield gateway
    await bus.close()


def persisted(gateway: Gateway, kind: str) -> float:
    registry = gateway.state.metrics.registry
    return registry.get_sample_value("cryptocast_events_persisted_total", {"type": kind}) or 0.0


@pytest.fixture
async def blocked() -> AsyncIterator[tuple[Gateway, BlockingMailer]]:
    mailer = BlockingMailer()
    async for gateway in started(mailer):
        yield gateway, mailer
        mailer.answer.set()  # lets the bus finish the batch in hand and close


async def test_a_mail_server_that_never_answers_does_not_hold_up_storing(
    blocked: tuple[Gateway, BlockingMailer],
) -> None:
    gateway, mailer = blocked
    await gateway.state.alerts.add(Alert("a@example.com", "BTC", 100.0, "above"))
    await gateway.state.bus.publish([candle(0, close=150.0)])

    async def sending() -> bool:
        return mailer.attempts == 1

    await eventually(sending, within=5)
    later = [candle(i, close=150.0) for i in range(1, 30)] + [prediction(i) for i in range(30)]
    await gateway.state.bus.publish(later)

    async def all_stored() -> bool:
        return persisted(gateway, "candle") == 30 and persisted(gateway, "prediction") == 30

    await eventually(all_stored, within=5)
    assert len(gateway.state.store.collections["candles"]) == 30  # type: ignore[attr-defined]
    assert mailer.attempts == 1  # still waiting on the first email


async def test_a_failing_mail_server_retries_only_the_alert() -> None:
    mailer = FailingMailer(failures=2)
    async for gateway in started(mailer):
        await gateway.state.alerts.add(Alert("a@example.com", "BTC", 100.0, "above"))
        await gateway.state.bus.publish([candle(0, close=150.0), prediction(0)])
        await asyncio.wait_for(gateway.state.bus.drain(), 5)  # type: ignore[attr-defined]
        assert len(mailer.sent) == 1 and mailer.failures == 0  # third delivery got through
        assert persisted(gateway, "candle") == 1  # stored once, never redelivered
        registry = gateway.state.metrics.registry
        assert registry.get_sample_value("cryptocast_alerts_sent_total") == 1


class RecordingMailer(FailingMailer):
    def __init__(self) -> None:
        super().__init__(failures=0)


async def test_a_redelivered_candle_sends_no_second_email() -> None:
    store, mailer = InMemoryAlertStore(), RecordingMailer()
    alert = Alert("a@example.com", "BTC", 100.0, "above")
    await store.add(alert)
    crossing = candle(0, close=150.0)
    for _ in range(3):
        await check_alerts([crossing], store, mailer, lambda: None)
    assert len(mailer.sent) == 1
    assert mailer.sent[0]["Message-ID"] == f"<alert-{alert.id}@cryptocast>"
    await check_alerts([candle(1, close=160.0)], store, mailer, lambda: None)
    assert len(mailer.sent) == 1  # fired once, then switched off


async def test_a_claim_whose_email_never_went_out_is_sent_on_redelivery() -> None:
    store, mailer = InMemoryAlertStore(), RecordingMailer()
    alert = Alert("a@example.com", "BTC", 100.0, "above")
    await store.add(alert)
    crossing = candle(0, close=150.0)
    assert await store.claim(alert.id, crossing.event_id)  # then the process died
    assert not await store.claim(alert.id, candle(1).event_id)  # no other candle takes it
    await check_alerts([crossing], store, mailer, lambda: None)
    await check_alerts([crossing], store, mailer, lambda: None)
    assert len(mailer.sent) == 1


async def test_a_failed_email_leaves_the_alert_active_for_the_next_candle() -> None:
    store, mailer = InMemoryAlertStore(), FailingMailer(failures=1)
    await store.add(Alert("a@example.com", "BTC", 100.0, "above"))
    with pytest.raises(OSError):
        await check_alerts([candle(0, close=150.0)], store, mailer, lambda: None)
    assert [a.active for a in store.alerts.values()] == [True]
    await check_alerts([candle(1, close=150.0)], store, mailer, lambda: None)
    assert len(mailer.sent) == 1
