"""One body per bus behaviour, run against the in-memory bus and against RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from cryptocast_common.events import Event
from tests.factories import candle, prediction
from tests.waiting import eventually

DeadReasons = Callable[[], Awaitable[list[str]]]
TIMEOUT = 15


async def _contains(items: list[str], item: str) -> bool:
    return item in items


class Recorder:
    """A handler that records what it got and signals when ``expected`` events arrived."""

    def __init__(self, expected: int, reply: Callable[[Event], list[Event]] | None = None):
        self.events: list[Event] = []
        self.batches = 0
        self.expected = expected
        self.done = asyncio.Event()
        self.reply = reply

    async def __call__(self, events: list[Event]) -> list[Event]:
        self.batches += 1
        self.events += events
        if len(self.events) >= self.expected:
            self.done.set()
        return [out for e in events for out in (self.reply(e) if self.reply else [])]


async def routes_by_topic(bus: Any, ns: str, dead: DeadReasons) -> None:
    candles = Recorder(2)
    everything = Recorder(3)
    await bus.consume(f"{ns}.contract", ["candle.*.4h"], candles)
    await bus.consume(f"{ns}.contract-b", ["#"], everything)
    await bus.publish([candle(0), prediction(0), candle(1, symbol="ETH")])
    async with asyncio.timeout(TIMEOUT):
        await candles.done.wait()
        await everything.done.wait()
    assert {e.event_id for e in candles.events} == {
        candle(0).event_id,
        candle(1, symbol="ETH").event_id,
    }
    assert len(everything.events) == 3


async def handler_output_is_published(bus: Any, ns: str, dead: DeadReasons) -> None:
    predictions = Recorder(1)
    await bus.consume(f"{ns}.contract-b", ["prediction.#"], predictions)
    await bus.consume(f"{ns}.contract", ["candle.#"], Recorder(1, lambda e: [prediction(0)]))
    await bus.publish([candle(0)])
    async with asyncio.timeout(TIMEOUT):
        await predictions.done.wait()
    assert predictions.events == [prediction(0)]


async def failing_handler_is_retried_then_dead_lettered(
    bus: Any, ns: str, dead: DeadReasons
) -> None:
    calls: list[str] = []

    async def flaky(events: list[Event]) -> list[Event]:
        calls.extend(e.event_id for e in events)
        if events[0].event_id == candle(0).event_id:
            raise RuntimeError("storage is down")
        return []

    await bus.consume(f"{ns}.contract", ["candle.#"], flaky)
    await bus.publish([candle(0)])
    reasons = await eventually(dead, TIMEOUT)
    assert len(reasons) == 1
    assert "handler failed 3 times" in reasons[0] and "storage is down" in reasons[0]
    assert calls.count(candle(0).event_id) == 3
    await bus.publish([candle(1)])  # the queue keeps flowing afterwards
    await eventually(lambda: _contains(calls, candle(1).event_id), TIMEOUT)


async def malformed_message_is_dead_lettered_with_reason(
    bus: Any, ns: str, dead: DeadReasons
) -> None:
    good = Recorder(1)
    await bus.consume(f"{ns}.contract", ["candle.#"], good, batch_size=10)
    await bus.publish_raw("candle.BTC.4h", b'{"type": "candle", "schema_version": 1}', "bad-1")
    await bus.publish([candle(0)])
    async with asyncio.timeout(TIMEOUT):
        await good.done.wait()
    [reason] = await eventually(dead, TIMEOUT)
    assert reason.startswith("invalid event:") and "candle.symbol: Field required" in reason
    assert good.events == [candle(0)]


async def one_bad_event_does_not_sink_its_batch(bus: Any, ns: str, dead: DeadReasons) -> None:
    handled: list[str] = []

    async def picky(events: list[Event]) -> list[Event]:
        if any(e.symbol == "ETH" for e in events):
            raise ValueError("ETH is not supported")
        handled.extend(e.event_id for e in events)
        return []

    await bus.publish([])  # publishing nothing is fine
    await bus.consume(f"{ns}.contract", ["candle.#"], picky, batch_size=50)
    await bus.publish([candle(i) for i in range(5)] + [candle(0, symbol="ETH")])
    reasons = await eventually(dead, TIMEOUT)
    await eventually(lambda: _contains(handled, candle(4).event_id), TIMEOUT)
    assert sorted(handled) == sorted(candle(i).event_id for i in range(5))
    assert "ETH is not supported" in reasons[0]


async def a_retry_waits_without_holding_up_the_queue(bus: Any, ns: str, dead: DeadReasons) -> None:
    calls: list[str] = []

    async def fails_once(events: list[Event]) -> list[Event]:
        calls.extend(e.event_id for e in events)
        if calls.count(candle(0).event_id) == 1 and events[0].event_id == candle(0).event_id:
            raise RuntimeError("try again")
        return []

    await bus.consume(f"{ns}.contract", ["candle.#"], fails_once)
    await bus.publish([candle(0)])
    await eventually(lambda: _contains(calls, candle(0).event_id), TIMEOUT)
    await bus.publish([candle(1)])
    await eventually(lambda: _contains(calls[2:], candle(0).event_id), TIMEOUT)
    assert calls == [candle(0).event_id, candle(1).event_id, candle(0).event_id]
    assert await dead() == []


async def crafted_bodies_are_dead_lettered_and_neighbours_handled(
    bus: Any, ns: str, dead: DeadReasons
) -> None:
    good = Recorder(2)
    await bus.consume(f"{ns}.contract", ["candle.#"], good, batch_size=10)
    crafted = [
        b'{"type": "candle", "schema_version": [], "symbol": "BTC"}',  # unhashable version
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any recursion limit
        b'{"type": "candle", "schema_version": 1, "interval": "99999999999999999999w"}',
        b'{"type": "candle", "schema_version": 1, "volume": NaN}',
        b'{"type": "candle", "schema_version": 1, "open": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe not utf-8",
        b"",
    ]
    await bus.publish([candle(0)])
    for i, body in enumerate(crafted):
        await bus.publish_raw("candle.BTC.4h", body, f"crafted-{i}")
    await bus.publish([candle(1)])
    async with asyncio.timeout(TIMEOUT):
        await good.done.wait()
    reasons = await eventually(lambda: _all_dead(dead, len(crafted)), TIMEOUT)
    assert all(reason.startswith("invalid event:") for reason in reasons)
    assert [e.event_id for e in good.events] == [candle(0).event_id, candle(1).event_id]


async def _all_dead(dead: DeadReasons, count: int) -> list[str] | None:
    reasons = await dead()
    return reasons if len(reasons) >= count else None


CONTRACT = [
    routes_by_topic,
    handler_output_is_published,
    failing_handler_is_retried_then_dead_lettered,
    malformed_message_is_dead_lettered_with_reason,
    one_bad_event_does_not_sink_its_batch,
    a_retry_waits_without_holding_up_the_queue,
    crafted_bodies_are_dead_lettered_and_neighbours_handled,
]
