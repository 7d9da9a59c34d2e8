"""The in-memory bus; the same contract runs against RabbitMQ in tests/integration."""

import asyncio

import pytest

from cryptocast_common.bus import InMemoryBus, topic_matches
from cryptocast_common.events import Event
from tests.factories import candle
from tests.integration.bus_contract import CONTRACT


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("candle.*.4h", "candle.BTC.4h", True),
        ("candle.*.4h", "candle.BTC.1h", False),
        ("candle.#", "candle.BTC.4h", True),
        ("#", "verification.SOL.4h", True),
        ("candle.#.4h", "candle.4h", True),
        ("*.BTC.*", "prediction.BTC.4h", True),
        ("*.BTC.*", "prediction.ETH.4h", False),
        ("candle.*", "candle.BTC.4h", False),
    ],
)
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


@pytest.mark.parametrize("scenario", CONTRACT, ids=lambda f: f.__name__)
async def test_in_memory_bus_contract(scenario) -> None:  # type: ignore[no-untyped-def]
    bus = InMemoryBus(max_attempts=3, retry_delay_seconds=0.5)

    async def dead_reasons() -> list[str]:
        return [d.reason for d in bus.dead_letters]

    try:
        await scenario(bus, "mem", dead_reasons)
    finally:
        await bus.close()


class _Escape(BaseException):
    """Something no ``except Exception`` catches, to end a consume loop the hard way."""


async def test_a_consume_loop_that_ends_is_restarted() -> None:
    bus = InMemoryBus()
    handled: list[Event] = []
    calls = 0

    async def dies_once(events: list[Event]) -> list[Event]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise _Escape
        handled.extend(events)
        return []

    await bus.consume("restart-test", ["candle.#"], dies_once)
    await bus.publish([candle(0)])
    await bus.publish([candle(1)])
    await asyncio.wait_for(bus.drain(), 5)
    await bus.ping()  # running again
    assert handled == [candle(1)]  # candle(0) died with the loop: RabbitMQ would redeliver it
    await bus.close()
