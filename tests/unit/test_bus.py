"""The in-memory bus; the same contract runs against RabbitMQ in tests/integration."""

import pytest

from cryptocast_common.bus import InMemoryBus, topic_matches
from tests.integration.bus_contract import CONTRACT


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("candle.*.4h", "candle.BTC.4h", True),
    ("candle.*.4h", "candle.BTC.1h", False),
    ("candle.#", "candle.BTC.4h", True),
    ("#", "verification.SOL.4h", True),
    ("candle.#.4h", "candle.4h", True),
    ("*.BTC.*", "prediction.BTC.4h", True),
    ("*.BTC.*", "prediction.ETH.4h", False),
    ("candle.*", "candle.BTC.4h", False),
])
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


@pytest.mark.parametrize("scenario", CONTRACT, ids=lambda f: f.__name__)
async def test_in_memory_bus_contract(scenario) -> None:  # type: ignore[no-untyped-def]
    bus = InMemoryBus(max_attempts=3)

    async def dead_reasons() -> list[str]:
        return [d.reason for d in bus.dead_letters]

    try:
        await scenario(bus, "mem", dead_reasons)
    finally:
        await bus.close()
