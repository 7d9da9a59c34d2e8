"""Two inference replicas over RabbitMQ: every candle of a series goes to the same replica, a
fast backfill loses no prediction, and the other replica takes over when the first leaves."""

from __future__ import annotations

from prometheus_client import REGISTRY

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.events import Event, Prediction
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.bootstrap import bootstrap as inference
from cryptocast_inference.registry import build_predictor
from cryptocast_inference.settings import InferenceSettings
from tests.factories import StoredCandles, candle
from tests.waiting import eventually

SYMBOLS = ("BTC", "ETH", "SOL")
WINDOW = build_predictor(InferenceSettings(), "4h").window  # candles one prediction needs
BACKFILL = WINDOW + 40
AFTER_HAND_OVER = 5


def gaps() -> float:
    return (
        REGISTRY.get_sample_value("cryptocast_inference_unpredicted_total", {"reason": "gap"}) or 0
    )


async def test_series_stay_on_one_replica_and_move_when_it_leaves(common: CommonSettings) -> None:
    url = common.amqp_url or ""
    backfill = [candle(i, close=100 + i % 7, symbol=s) for i in range(BACKFILL) for s in SYMBOLS]
    storage = [StoredCandles(backfill), StoredCandles(backfill)]
    buses = [await AmqpBus.connect(url, common) for _ in storage]  # a replica's connection
    replicas = [
        await inference(common, InferenceSettings(baseline=False), bus=bus, history=history)
        for bus, history in zip(buses, storage, strict=True)
    ]
    predictions: list[Prediction] = []

    async def collect(events: list[Event]) -> list[Event]:
        predictions.extend(e for e in events if isinstance(e, Prediction))
        return []

    observer = await AmqpBus.connect(url, common)
    await observer.consume(common.queue_for("contract"), ["prediction.*.4h"], collect)
    gaps_before = gaps()
    try:
        for replica in replicas:
            await replica.start()
        await observer.publish(backfill)
        expected = len(SYMBOLS) * (BACKFILL - WINDOW + 1)
        await eventually(lambda: _at_least(predictions, expected), within=60)

        # One replica took every series: it asked storage once per series (its first candle,
        # nothing older stored), the other never did; no candle lacked its window.
        active, standby = sorted(range(2), key=lambda i: -storage[i].calls)
        assert (storage[active].calls, storage[standby].calls) == (len(SYMBOLS), 0)
        assert gaps() == gaps_before
        assert len({p.event_id for p in predictions}) == expected

        await buses.pop(active).close()  # the replica leaves
        later = [
            candle(i, close=100 + i % 7, symbol=s)
            for i in range(BACKFILL, BACKFILL + AFTER_HAND_OVER)
            for s in SYMBOLS
        ]
        storage[standby].candles += later
        await observer.publish(later)
        expected += len(later)
        await eventually(lambda: _at_least(predictions, expected), within=60)

        # The standby rebuilt each window from storage once, then from the bus.
        assert storage[standby].calls == len(SYMBOLS)
        assert gaps() == gaps_before
        made = {(p.symbol, p.based_on.close_time) for p in predictions}
        assert made >= {(c.symbol, c.close_time) for c in later}
    finally:
        for bus in [*buses, observer]:
            await bus.close()


async def _at_least(predictions: list[Prediction], count: int) -> bool:
    return len({p.event_id for p in predictions}) >= count
