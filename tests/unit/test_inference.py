from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from cryptocast_common.events import Candle, ModelCard, ModelChange, ModelRef, iso_utc
from cryptocast_common.registry import InMemoryModelRegistry
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS
from cryptocast_inference.handlers import (
    InferenceDeps,
    LineupDeps,
    handle_candles,
    handle_model_changes,
)
from cryptocast_inference.history import HistoryUnavailable
from cryptocast_inference.predictors import NaivePredictor
from cryptocast_inference.registry import RegisteredModels, lineup_of
from cryptocast_inference.settings import LSTM_MODEL, SHIPPED_MODEL
from cryptocast_inference.windows import CandleWindows
from tests.factories import T0, StoredCandles, candle

DAY = timedelta(days=1)


class MeanPredictor:
    """Predicts the mean close of a 3-candle window; records each batch it was given."""

    model = ModelRef(name="mean", version="3")
    skill = None
    window = 3
    interval = "4h"
    horizons = 1

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict(self, windows: Sequence[Sequence[Candle]], horizon: int = 1) -> list[float]:
        self.batches.append(len(windows))
        return [sum(c.close for c in w) / len(w) for w in windows]


def test_windows_are_assembled_for_any_held_candle_in_any_order() -> None:
    windows = CandleWindows(3, reorder=4)
    windows.add(candle(1))
    windows.add(candle(1, close=101))  # a redelivery replaces it
    assert windows.full(candle(1, close=101)) is None  # only one so far
    windows.add(candle(2))
    windows.add(candle(0))  # late: it arrives after newer ones
    assert windows.full(candle(2)) == [candle(0), candle(1, close=101), candle(2)]
    windows.add(candle(5))
    assert windows.full(candle(5)) is None  # a gap before it
    for i in range(6, 30):
        windows.add(candle(i))
    assert windows.full(candle(29)) == [candle(27), candle(28), candle(29)]
    assert windows.full(candle(2)) is None  # long forgotten: read back from history


async def test_naive_predicts_the_last_close_for_the_next_candle() -> None:
    deps = InferenceDeps(lineup_of([NaivePredictor()]), CandleWindows(1), StoredCandles([]))
    [p] = await handle_candles([candle(4, close=123.0)], deps)
    assert p.own_close == 123.0
    assert p.based_on.close_time == candle(4).close_time
    assert p.target_time == candle(5).close_time
    assert p.event_id == "prediction:naive@1:BTC:4h:" + candle(5).close_time.isoformat().replace(
        "+00:00", "Z"
    )


async def test_windows_are_rebuilt_from_history_after_a_restart() -> None:
    history = StoredCandles([candle(i, close=100 + i) for i in range(5)])
    predictor = MeanPredictor()
    deps = InferenceDeps(lineup_of([predictor]), CandleWindows(3), history)
    [p] = await handle_candles([candle(5, close=105)], deps)
    assert p.own_close == (103 + 104 + 105) / 3
    assert history.calls == 1
    [p] = await handle_candles([candle(6, close=106)], deps)  # from memory now
    assert p.own_close == 105 and history.calls == 1


async def test_no_prediction_without_enough_history() -> None:
    deps = InferenceDeps(lineup_of([MeanPredictor()]), CandleWindows(3), StoredCandles([]))
    assert await handle_candles([candle(0)], deps) == []
    assert await handle_candles([candle(1)], deps) == []
    assert len(await handle_candles([candle(2)], deps)) == 1


class BrokenHistory(StoredCandles):
    """Storage that cannot answer until ``mend`` is called."""

    broken = True

    async def before(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        if self.broken:
            self.calls += 1
            raise HistoryUnavailable("gateway down")
        return await super().before(symbol, interval, end, limit)


def counted_deps(history: StoredCandles) -> tuple[InferenceDeps, CollectorRegistry]:
    registry = CollectorRegistry()
    deps = InferenceDeps(
        lineup_of([MeanPredictor()]),
        CandleWindows(3),
        history,
        Counter("unpredicted", "", ["reason"], registry=registry),
        Counter("history_reads", "", ["outcome"], registry=registry),
    )
    return deps, registry


async def test_unreadable_storage_retries_the_candle_instead_of_skipping_it() -> None:
    history = BrokenHistory([candle(i, close=100 + i) for i in range(5)])
    deps, registry = counted_deps(history)
    with pytest.raises(HistoryUnavailable):  # the bus retries it, then dead-letters it
        await handle_candles([candle(5, close=105)], deps)
    with pytest.raises(HistoryUnavailable):  # the series asks again, not "known" now
        await handle_candles([candle(6, close=106)], deps)
    history.broken = False
    [p] = await handle_candles([candle(5, close=105)], deps)  # the retry
    assert p.own_close == (103 + 104 + 105) / 3
    assert registry.get_sample_value("history_reads_total", {"outcome": "failed"}) == 2
    assert registry.get_sample_value("history_reads_total", {"outcome": "ok"}) == 1
    assert registry.get_sample_value("unpredicted_total", {"reason": "gap"}) is None


async def test_candles_without_a_window_are_counted_by_reason() -> None:
    deps, registry = counted_deps(StoredCandles([]))
    for i in (0, 1, 3, 4, 5):  # candle 2 never comes
        await handle_candles([candle(i)], deps)
    assert registry.get_sample_value("unpredicted_total", {"reason": "warm_up"}) == 2
    assert registry.get_sample_value("unpredicted_total", {"reason": "gap"}) == 2  # 3 and 4


async def test_a_replica_active_again_reads_what_it_missed_from_storage() -> None:
    """Active, then standby while another replica predicted, then active again: the candles
    it did not see are read back once, not waited for."""
    history = StoredCandles([candle(i, close=100 + i) for i in range(80)])
    deps, registry = counted_deps(history)
    for i in range(20):
        await handle_candles([candle(i, close=100 + i)], deps)
    assert history.calls == 1  # the series' first candle
    [p] = await handle_candles([candle(70, close=170)], deps)
    assert p.own_close == (168 + 169 + 170) / 3 and history.calls == 2
    await handle_candles([candle(71, close=171)], deps)
    assert history.calls == 2
    assert registry.get_sample_value("unpredicted_total", {"reason": "gap"}) is None


async def test_candles_closing_together_are_predicted_in_one_batch() -> None:
    predictor = MeanPredictor()
    deps = InferenceDeps(lineup_of([predictor]), CandleWindows(3), StoredCandles([]))
    for i in range(2):
        await handle_candles([candle(i, symbol=s) for s in ("BTC", "ETH", "SOL")], deps)
    predictions = await handle_candles([candle(2, symbol=s) for s in ("BTC", "ETH", "SOL")], deps)
    assert [p.symbol for p in predictions] == ["BTC", "ETH", "SOL"]
    assert predictor.batches == [3]


async def test_a_candle_handled_after_newer_ones_is_still_predicted() -> None:
    """After a crash a returned candle is handled after newer ones: it keeps its prediction."""
    deps = InferenceDeps(lineup_of([MeanPredictor()]), CandleWindows(3), StoredCandles([]))
    for i in (0, 1, 2, 4, 5):
        await handle_candles([candle(i, close=100 + i)], deps)
    [late] = await handle_candles([candle(3, close=103)], deps)
    assert late.based_on.close_time == candle(3).close_time
    assert late.own_close == (101 + 102 + 103) / 3


async def test_a_series_that_starts_on_the_bus_reads_storage_once() -> None:
    history = StoredCandles([])
    deps = InferenceDeps(lineup_of([MeanPredictor()]), CandleWindows(3), history)
    for i in range(5):
        await handle_candles([candle(i)], deps)
    assert history.calls == 1  # the first candle asked; the rest came on the bus


async def test_every_model_predicts_and_the_champion_serves_no_change_until_its_gate_opens() -> (
    None
):
    mean = MeanPredictor()
    lineup = lineup_of([mean, NaivePredictor()])
    deps = InferenceDeps(lineup, CandleWindows(lineup.window), StoredCandles([]))
    for i in range(2):
        await handle_candles([candle(i, close=100 + i)], deps)
    champion, baseline = await handle_candles([candle(2, close=110)], deps)
    assert (champion.role, champion.gate, baseline.role) == ("champion", "closed", "baseline")
    assert champion.predicted_close == 110 and champion.model_close == (100 + 101 + 110) / 3
    assert baseline.predicted_close == 110 and baseline.gate is None
    lineup.apply(change("gate_opened", "mean@3"))
    champion, _ = await handle_candles([candle(3, close=120)], deps)
    assert champion.gate == "open" and champion.predicted_close == (101 + 110 + 120) / 3
    assert champion.model_close is None
    # The naive baseline promoted: it is the champion, and the mean model a challenger.
    lineup.apply(change("promoted", "naive@1"))
    mean_now, naive_now = await handle_candles([candle(4, close=121)], deps)
    assert (mean_now.role, naive_now.role, naive_now.gate) == ("challenger", "champion", "closed")
    # An operator's request is the policy's to apply; a model not loaded here is refused.
    lineup.apply(change("pinned", "mean@3", by="operator"))
    lineup.apply(change("promoted", "other@1"))
    assert lineup.champion(("BTC", "4h")) == "naive@1"


def change(kind: str, model: str, by: str = "policy") -> ModelChange:
    return ModelChange(
        symbol="BTC",
        interval="4h",
        kind=kind,
        model=ModelRef.parse(model),
        by=by,
        reason="test",
        decided_at=candle(0).open_time,
    )


async def test_a_registered_version_is_loaded_from_the_registry_and_a_damaged_one_refused(
    tmp_path: Path,
) -> None:
    registry = InMemoryModelRegistry()
    await registry.seed_from_folder(BUNDLED_ARTIFACTS)
    lineup = lineup_of([NaivePredictor()])
    windows = CandleWindows(lineup.window)
    deps = LineupDeps(lineup, windows, RegisteredModels(registry, tmp_path, ["4h"]), ["BTC"])
    shipped = ModelRef.parse(SHIPPED_MODEL)
    announced = change("registered", SHIPPED_MODEL, by="trainer")
    [card] = await handle_model_changes([announced, announced], deps)  # loaded once
    assert isinstance(card, ModelCard) and (card.symbol, card.model) == ("BTC", shipped)
    assert lineup.role(SHIPPED_MODEL, ("BTC", "4h")) == "challenger"
    assert windows.size == lineup.window > 1 and (tmp_path / shipped.name).is_dir()
    lstm = ModelRef.parse(LSTM_MODEL)
    registry.corrupt(LSTM_MODEL, "scaler.json", b"{}")
    [refused] = await handle_model_changes([change("registered", LSTM_MODEL, by="trainer")], deps)
    assert (refused.kind, refused.by, refused.model) == ("refused", "inference", lstm)
    assert "scaler.json" in refused.reason and LSTM_MODEL not in lineup.loaded


def day(i: int, close: float = 100.0) -> Candle:
    return candle(
        i, close=close, interval="1d", open_time=T0 + i * DAY, close_time=T0 + (i + 1) * DAY
    )


async def test_each_interval_is_predicted_by_its_own_models_at_every_horizon_they_reach() -> None:
    mean = MeanPredictor()  # fitted on 4h, one step ahead
    lineup = lineup_of([mean, NaivePredictor()], {"4h": "mean@3", "1d": "naive@1"})
    deps = InferenceDeps(lineup, CandleWindows(lineup.window), StoredCandles([]), horizons=3)
    for i in range(2):
        await handle_candles([candle(i, close=100 + i), day(i)], deps)
    made = await handle_candles([candle(2, close=110), day(2, close=90)], deps)
    four_hour = [p for p in made if p.interval == "4h"]
    daily = [p for p in made if p.interval == "1d"]
    # The 4h mean model one candle ahead, the baseline 1 .. 3 candles ahead of each series.
    assert sorted((str(p.model), p.horizon) for p in four_hour) == [
        ("mean@3", 1),
        ("naive@1", 1),
        ("naive@1", 2),
        ("naive@1", 3),
    ]
    assert [(p.horizon, p.role) for p in daily] == [
        (1, "champion"),
        (2, "champion"),
        (3, "champion"),
    ]
    assert [p.target_time for p in daily] == [day(2).close_time + h * DAY for h in (1, 2, 3)]
    assert all(p.predicted_close == 90 and p.gate == "closed" for p in daily)
    # Every prediction has an id of its own; one step ahead keeps the id it always had.
    assert len({p.event_id for p in made}) == len(made) == 7
    one_step = next(p for p in four_hour if p.horizon == 1 and str(p.model) == "naive@1")
    assert one_step.event_id == f"prediction:naive@1:BTC:4h:{iso_utc(candle(3).close_time)}"
    assert ":h3:" in next(p for p in daily if p.horizon == 3).event_id
    # A daily window is as long as its own models need: the baseline's one candle.
    assert lineup.window_for("1d") == 1 and lineup.window_for("4h") == 3
