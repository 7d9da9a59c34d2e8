from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from cryptocast_common.events import Event, PredictionInterval
from cryptocast_verifier.handlers import TRIM_EVERY, GiveUps, VerifierDeps, handle
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.store import InMemoryVerifierStore
from tests.factories import candle, prediction


def test_scoring_by_hand() -> None:
    v = verify(prediction(0, base=100.0, predicted=103.0), actual_close=102.0, tolerance_pct=2.0)
    assert v.error_pct == pytest.approx(1 / 102 * 100)
    assert v.within_tolerance is True
    assert v.direction_correct is True
    assert v.naive_error_pct == pytest.approx(2 / 102 * 100)
    assert v.event_id == f"verification:{prediction(0).event_id}"
    wrong = verify(prediction(0, base=100.0, predicted=97.0), actual_close=102.0, tolerance_pct=2.0)
    assert wrong.within_tolerance is False and wrong.direction_correct is False


def test_a_tie_says_nothing_about_direction() -> None:
    naive = verify(prediction(0, base=100.0, predicted=100.0), 101.0, 2.0)
    flat = verify(prediction(0, base=100.0, predicted=101.0), 100.0, 2.0)
    assert naive.direction_correct is None and flat.direction_correct is None


def deps(max_closes: int = 1000) -> VerifierDeps:
    registry = CollectorRegistry()
    given_up = GiveUps(
        Counter("closes", "", registry=registry), Counter("predictions", "", registry=registry)
    )
    return VerifierDeps(
        InMemoryVerifierStore(),
        tolerance_pct=2.0,
        reorder_candles=10,
        max_closes=max_closes,
        given_up=given_up,
    )


def given_up(d: VerifierDeps, what: str) -> float:
    counter = d.given_up.closes if what == "closes" else d.given_up.predictions
    return counter.collect()[0].samples[0].value


async def test_prediction_waits_for_its_target_candle() -> None:
    d = deps()
    assert await handle([prediction(0, base=100.0, predicted=101.0)], d) == []
    assert await handle([candle(0)], d) == []  # not the target
    [v] = await handle([candle(1, close=102.0)], d)
    assert v.actual_close == 102.0 and v.prediction_id == prediction(0).event_id


async def test_a_late_prediction_is_verified_at_once() -> None:
    d = deps()
    await handle([candle(1, close=99.0)], d)
    [v] = await handle([prediction(0)], d)
    assert v.actual_close == 99.0


async def test_redelivery_yields_the_same_verification() -> None:
    d = deps()
    await handle([prediction(0)], d)
    first = await handle([candle(1, close=99.0)], d)
    again = await handle([candle(1, close=99.0)], d)
    assert first == again


async def test_a_prediction_whose_target_never_comes_is_given_up_and_counted() -> None:
    d = deps()
    await handle([prediction(0)], d)  # targets candle(1)'s close
    await handle([candle(30)], d)  # candle(1) never came, the series moved on
    assert await handle([candle(1)], d) == []
    assert given_up(d, "predictions") == 1


async def test_a_burst_of_candles_ahead_of_its_predictions_loses_no_verification() -> None:
    """Candles run far ahead of the predictions made from them: every close is kept until
    the predictions have passed it, however many candles came meanwhile."""
    d = deps()
    await handle([candle(i) for i in range(200)], d)
    verdicts = await handle([prediction(i) for i in range(199)], d)
    assert [v.prediction_id for v in verdicts] == [prediction(i).event_id for i in range(199)]
    assert given_up(d, "closes") == given_up(d, "predictions") == 0


async def test_closes_are_forgotten_once_predictions_have_passed_them() -> None:
    d = deps()
    await handle([prediction(100)], d)
    store = d.store
    assert isinstance(store, InMemoryVerifierStore)
    await handle([candle(i) for i in range(60, 102)], d)
    kept = sorted(moment for (_, _, moment) in store.closes)
    assert kept[0] == candle(100 - 10).close_time  # reorder_candles behind the frontier
    assert given_up(d, "closes") == 0


async def test_closes_are_given_up_and_counted_when_predictions_stop_coming() -> None:
    d = deps(max_closes=20)
    await handle([candle(i) for i in range(50)], d)
    assert given_up(d, "closes") == 50 - 20
    assert await handle([prediction(5)], d) == []  # its target close was given up


def test_a_distribution_is_scored_by_hand() -> None:
    forecast = prediction(0, base=100.0, predicted=100.0).model_copy(
        update={
            "interval_80": PredictionInterval(lower=98.0, upper=102.0),
            "interval_95": PredictionInterval(lower=96.0, upper=104.0),
            "p_up": 0.6,
        }
    )
    v = verify(forecast, actual_close=103.0, tolerance_pct=2.0)
    assert (v.inside_80, v.inside_95) == (False, True)
    assert v.width_80_pct == pytest.approx(4.0) and v.width_95_pct == pytest.approx(8.0)
    assert v.went_up is True and v.brier == pytest.approx((0.6 - 1) ** 2)
    flat = verify(forecast, actual_close=100.0, tolerance_pct=2.0)
    assert flat.went_up is None and flat.brier is None and flat.inside_80 is True
    plain = verify(prediction(0), actual_close=103.0, tolerance_pct=2.0)
    assert plain.inside_80 is None and plain.brier is None and plain.went_up is True


async def test_verified_predictions_are_not_counted_as_given_up() -> None:
    """Live, every prediction waits for its target candle and stays pending once verified
    (for redelivery); forgetting it later is not giving it up."""
    d = deps()
    for i in range(40):
        await handle([prediction(i), prediction(i, model="other")], d)  # two models wait
        assert len(await handle([candle(i + 1)], d)) == 2
    assert given_up(d, "predictions") == 0


class CountingStore(InMemoryVerifierStore):
    """Counts the calls a handler makes: each is a round trip to MongoDB."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = defaultdict(int)
        for name in (
            "save_closes",
            "closes_at",
            "add_pending",
            "pending_for",
            "forget_closes_before",
            "forget_pending_before",
        ):
            setattr(self, name, self._counted(name, getattr(self, name)))

    def _counted(self, name: str, method: Callable[..., Awaitable[Any]]) -> Any:
        async def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return await method(*args)

        return counted


async def test_a_batch_reads_closes_and_pending_predictions_once_whatever_its_series() -> None:
    d = deps()
    d.store = store = CountingStore()
    batch: list[Event] = []
    for symbol in ("BTC", "ETH"):
        batch += [prediction(i, symbol=symbol) for i in range(50)]
        batch += [candle(i, symbol=symbol) for i in range(1, 51)]
    verdicts = await handle(batch, d)
    assert sorted(v.prediction_id for v in verdicts) == sorted(
        prediction(i, symbol=s).event_id for s in ("BTC", "ETH") for i in range(50)
    )
    assert store.calls["save_closes"] == 1
    assert store.calls["closes_at"] == store.calls["pending_for"] == 1  # for both series
    assert store.calls["add_pending"] == 0  # every target close came in the same batch
    assert store.calls["forget_pending_before"] == 2  # a series' first trim
    assert sum(store.calls.values()) <= 9  # and a check and a delete of closes per series


async def test_predictions_of_several_series_wait_in_one_write_and_meet_their_closes() -> None:
    d = deps()
    d.store = store = CountingStore()
    symbols = ("BTC", "ETH", "SOL")
    assert await handle([prediction(0, symbol=s) for s in symbols], d) == []
    assert store.calls["add_pending"] == 1 and store.calls["closes_at"] == 1
    # Only ETH's and SOL's target candles come, with different closes: each meets its own.
    verdicts = await handle(
        [candle(1, close=99.0, symbol="ETH"), candle(1, close=97.0, symbol="SOL")], d
    )
    assert store.calls["pending_for"] == 1
    assert sorted((v.symbol, v.actual_close) for v in verdicts) == [("ETH", 99.0), ("SOL", 97.0)]
    [btc] = await handle([candle(1, close=98.0)], d)
    assert (btc.symbol, btc.actual_close) == ("BTC", 98.0)


async def test_a_series_is_trimmed_every_few_intervals_not_on_every_batch() -> None:
    d = deps()
    d.store = store = CountingStore()
    for i in range(40):
        await handle([prediction(i), candle(i + 1)], d)
    # Trimmed at the first candle, then every TRIM_EVERY intervals.
    assert store.calls["forget_pending_before"] == 1 + 39 // TRIM_EVERY


async def test_a_prediction_several_candles_ahead_waits_for_its_own_target() -> None:
    d = deps()
    one, three = prediction(0), prediction(0, horizon=3)
    assert await handle([one, three], d) == []
    [first] = await handle([candle(1, close=102.0)], d)
    assert (first.prediction_id, first.horizon) == (one.event_id, 1)
    assert await handle([candle(2)], d) == []
    [later] = await handle([candle(3, close=104.0)], d)
    assert (later.prediction_id, later.horizon, later.actual_close) == (three.event_id, 3, 104.0)
    assert later.naive_error_pct == pytest.approx(4 / 104 * 100)  # no change from 100
