"""Data-quality checks and the live schedule, on a fake clock with a scripted source."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cryptocast_common.events import Candle, Event
from cryptocast_ingestor.datasets import Bar
from cryptocast_ingestor.live import GAP_PATIENCE, LiveIngestor, LivePolicy, backoff_seconds
from cryptocast_ingestor.quality import JumpRule, QualityGate
from cryptocast_ingestor.sources import SourceError
from tests.waiting import eventually

T0 = datetime(2026, 8, 1, tzinfo=UTC)
H4 = timedelta(hours=4)


def bar(i: int, close: float = 100.0, **changes: float) -> Bar:
    made = Bar(T0 + i * H4, close, close * 1.01, close * 0.99, close, 5.0)
    return replace(made, **changes)  # type: ignore[arg-type]


def wiggle(i: int) -> float:
    return 100.0 * (1 + 0.01 * ((i * 7) % 5 - 2))  # about 1.4% volatility


def gate() -> QualityGate:
    return QualityGate("BTC", "4h", "test", JumpRule(sigmas=8, volatility_window=30))


@pytest.mark.parametrize(
    "broken, reason",
    [
        (bar(0, open=100.0, close=103.0), "high/low not bracketing open/close"),
        (bar(0, low=-1.0), "non-positive price"),
        (bar(0, volume=-5.0), "negative volume"),
        (replace(bar(0), open_time=T0 + timedelta(minutes=30)), "open time not aligned to 4h"),
    ],
)
def test_inconsistent_candles_are_rejected_and_counted(
    broken: Bar, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    checks = gate()
    assert checks.admit([broken]) == []
    assert checks.rejected == {reason: 1}
    assert f"candle rejected: {reason}" in caplog.text


def test_a_jump_confirmed_by_the_next_candle_is_published() -> None:
    checks = gate()
    history = [bar(i, wiggle(i)) for i in range(20)]
    assert len(checks.admit(history)) == 20
    jump = bar(20, 150.0)
    assert checks.admit([jump]) == []  # held until the next candle says whether it was real
    assert checks.holding
    published = checks.admit([bar(21, 148.0)])
    assert [c.close for c in published] == [150.0, 148.0]
    assert not checks.rejected


def test_a_jump_that_reverts_is_a_bad_print() -> None:
    checks = gate()
    checks.admit([bar(i, wiggle(i)) for i in range(20)])
    published = checks.admit([bar(20, 150.0), bar(21, 101.0)])
    assert [c.close for c in published] == [101.0]
    assert checks.rejected == {"price jump not confirmed by the next candle": 1}


class Clock:
    """Time that only moves when the ingestor sleeps; ends the run at ``until``."""

    def __init__(self, now: datetime, until: datetime) -> None:
        self.now, self.until = now, until
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.now > self.until:
            raise EndOfTest


class EndOfTest(Exception):
    pass


class ScriptedSource:
    """Serves a series of candles; some appear late, and it can fail for a while."""

    name = "scripted"

    def __init__(
        self, bars: Sequence[Bar], late: dict[datetime, int] | None = None, failures: int = 0
    ) -> None:
        self.bars = list(bars)
        self.late = late or {}  # open time → how many fetches miss it first
        self.failures = failures
        self.fetches = 0

    def check_interval(self, interval: str) -> None:
        pass

    async def fetch_closed(
        self, symbol: str, interval: str, since: datetime, now: datetime
    ) -> list[Bar]:
        self.fetches += 1
        if self.failures:
            self.failures -= 1
            raise SourceError("network is unreachable")
        found = []
        for b in self.bars:
            if b.open_time >= since and b.open_time + H4 <= now:
                if self.late.get(b.open_time, 0) > 0:
                    self.late[b.open_time] -= 1
                    continue
                found.append(b)
        return found

    async def close(self) -> None:
        pass


class Broker:
    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.published: list[Candle] = []

    async def publish(self, events: Sequence[Event]) -> None:
        if self.down_for:
            self.down_for -= 1
            raise ConnectionError("broker unreachable")
        self.published += [e for e in events if isinstance(e, Candle)]


async def run(
    source: ScriptedSource, broker: Broker, clock: Clock, policy: LivePolicy
) -> LiveIngestor:
    live = LiveIngestor(
        source, broker.publish, policy, clock=clock, sleep=clock.sleep, jitter=lambda: 1.0
    )
    live.add("BTC", "4h")
    with pytest.raises(EndOfTest):
        await live.run()
    return live


async def test_backfill_then_one_candle_just_after_each_close() -> None:
    start = T0 + 10 * H4 + timedelta(minutes=7)
    source = ScriptedSource([bar(i, wiggle(i)) for i in range(20)])
    clock = Clock(start, until=start + 3 * H4)
    broker = Broker()
    await run(source, broker, clock, LivePolicy(backfill=5, settle_seconds=5))
    opens = [c.open_time for c in broker.published]
    assert opens == [T0 + i * H4 for i in range(5, 13)]  # 5 backfilled, then 3 live
    assert clock.sleeps[0] == pytest.approx((H4 - timedelta(minutes=7)).total_seconds() + 5)
    assert clock.sleeps[1:3] == [H4.total_seconds(), H4.total_seconds()]
    assert all(c.source == "scripted" for c in broker.published)


async def test_a_late_candle_is_fetched_again_and_order_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = T0 + 10 * H4 + timedelta(minutes=1)
    source = ScriptedSource([bar(i, wiggle(i)) for i in range(20)], late={T0 + 7 * H4: 2})
    clock = Clock(start, until=start + H4)
    broker = Broker()
    with caplog.at_level(logging.INFO):
        await run(source, broker, clock, LivePolicy(backfill=5, lag_retry_seconds=60))
    assert [c.open_time for c in broker.published] == [T0 + i * H4 for i in range(5, 11)]
    assert clock.sleeps[:2] == [60, 60]  # asked again a minute later, twice
    assert caplog.text.count("missing candle, asking the source again") == 2


async def test_a_candle_the_source_never_has_becomes_an_accepted_gap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = T0 + 10 * H4 + timedelta(minutes=1)
    source = ScriptedSource([bar(i, wiggle(i)) for i in range(20) if i != 7])
    clock = Clock(start, until=start + H4)
    broker = Broker()
    with caplog.at_level(logging.INFO):
        live = await run(source, broker, clock, LivePolicy(backfill=5, lag_retry_seconds=60))
    assert [c.open_time for c in broker.published] == [T0 + i * H4 for i in (5, 6, 8, 9, 10)]
    assert live.streams[0].gaps_accepted == 1
    assert caplog.text.count("missing candle") == GAP_PATIENCE
    assert "source has no candle here" in caplog.text


async def test_an_unreachable_source_is_logged_once_and_retried_with_capped_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = T0 + 10 * H4 + timedelta(minutes=1)
    source = ScriptedSource([bar(i, wiggle(i)) for i in range(20)], failures=6)
    clock = Clock(start, until=start + H4)
    broker = Broker()
    with caplog.at_level(logging.DEBUG):
        await run(source, broker, clock, LivePolicy(backfill=3, max_backoff_seconds=10))
    assert clock.sleeps[:6] == [1, 2, 4, 8, 10, 10]
    assert [c.open_time for c in broker.published] == [T0 + i * H4 for i in range(7, 11)]
    assert caplog.text.count("source unreachable; retrying") == 1
    assert caplog.text.count("source reachable again") == 1


async def test_candles_wait_for_the_broker_and_none_are_lost() -> None:
    start = T0 + 10 * H4 + timedelta(minutes=1)
    source = ScriptedSource([bar(i, wiggle(i)) for i in range(20)])
    clock = Clock(start, until=start + 2 * H4)
    broker = Broker(down_for=4)
    await run(source, broker, clock, LivePolicy(backfill=4))
    assert [c.open_time for c in broker.published] == [T0 + i * H4 for i in range(6, 12)]
    assert source.fetches == 3  # the backfill was fetched once, not again per retry


def test_backoff_grows_exponentially_and_is_capped_with_jitter() -> None:
    assert [backoff_seconds(n, 60, lambda: 1.0) for n in (1, 2, 3, 7, 8)] == [1, 2, 4, 60, 60]
    assert backoff_seconds(3, 60, lambda: 0.0) == 2  # jitter keeps at least half


async def test_a_series_added_while_the_loop_waits_is_backfilled_at_once() -> None:
    now = T0 + 10 * H4 + timedelta(minutes=7)
    source = ScriptedSource([bar(i, wiggle(i)) for i in range(20)])
    broker = Broker()
    waits: list[float] = []

    async def wait_for_the_next_close(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.Event().wait()  # hours, as far as this test goes

    live = LiveIngestor(
        source,
        broker.publish,
        LivePolicy(backfill=3),
        clock=lambda: now,
        sleep=wait_for_the_next_close,
    )
    live.add("BTC", "4h")
    running = asyncio.create_task(live.run())
    try:

        async def waiting() -> bool:
            return bool(waits)

        async def eth_published() -> bool:
            return any(c.symbol == "ETH" for c in broker.published)

        await eventually(waiting, within=5)  # BTC backfilled; the loop waits hours
        live.add("ETH", "4h")
        live.add("ETH", "4h")  # a redelivered request: one stream
        await eventually(eth_published, within=5)
        assert [c.open_time for c in broker.published if c.symbol == "ETH"] == [
            T0 + i * H4 for i in range(7, 10)
        ]
        assert [(s.symbol, s.interval) for s in live.streams] == [("BTC", "4h"), ("ETH", "4h")]
    finally:
        running.cancel()
