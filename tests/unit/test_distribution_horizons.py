"""The distribution forecaster h candles ahead: values worked out by hand, the one-step path
unchanged for the shipped artifact, horizons and intervals in artifacts, daily candles."""

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from cryptocast_common.events import Candle
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS
from cryptocast_inference.distribution import (
    DistributionParams,
    forecast_arrays,
    load_distribution,
    save_distribution,
    target_slot,
)
from cryptocast_inference.series import read_series
from cryptocast_trainer.select_distribution import DATA, ahead, daily_candles, make_coin
from tests.factories import candle

SHIPPED = BUNDLED_ARTIFACTS / "dist-4h" / "20261202-4dcd0876"

# Closes 100, 100 e^0.1, 100 e^0.05: returns +0.1 and -0.05 (mean 0.025), half-life 1:
# weights 1/3 (older), 2/3 (newer). Seasonal factors (0.5, 2, 1) over a period of 3 slots.
CLOSES = [100.0, 100 * math.exp(0.1), 100 * math.exp(0.05)]
HAND = DistributionParams(
    window=3,
    half_life=1.0,
    long_run_weight=0.0,
    seasonal=(0.5, 2.0, 1.0),
    quantiles=(-1.0, 1.0, -2.0, 2.0),
    drift_coef=0.2,
    reversal_coef=-0.1,
    p_up_intercept=0.5,
    horizon_quantiles={2: (-1.5, 1.5, -3.0, 3.0)},
    horizon_p_up={2: (0.4, 0.0)},
)


def test_two_steps_by_hand() -> None:
    # First target in slot 0: the older return sits in slot 1 (factor 2), the newer in slot 2
    # (factor 1): de-seasonalised variance (1/3)(0.01 / 4) + (2/3)(0.0025 / 1) = 0.0025.
    # Two steps cover slots 0 and 1: 0.25 + 4 = 4.25, sigma_2 = 0.05 sqrt(4.25) = 0.10308.
    # First target in slot 1: the returns sit in slots 2 (1) and 0 (0.5):
    # (1/3)(0.01) + (2/3)(0.0025 / 0.25) = 0.01; slots 1 and 2: 4 + 1 = 5, sigma_2 = 0.1 sqrt 5.
    # One step from slot 0 for contrast: 0.05 * 0.5. mu_2 = -0.1 * (-0.05) (reversal, first
    # step only) + 2 * 0.2 * 0.025 (drift, both steps) = 0.015; mu_1 = 0.005 + 0.005 = 0.01.
    closes = np.array([CLOSES, CLOSES])
    two = forecast_arrays(HAND, closes, np.array([0, 1]), horizon=2)
    assert two.sigma == pytest.approx([0.05 * math.sqrt(4.25), 0.1 * math.sqrt(5)], rel=1e-12)
    assert two.mu == pytest.approx([0.015, 0.015], rel=1e-12)
    last = CLOSES[-1]
    assert two.point[0] == pytest.approx(last * math.exp(0.015), rel=1e-12)
    assert two.lower_80[0] == pytest.approx(last * math.exp(0.015 - 1.5 * 0.05 * math.sqrt(4.25)))
    assert two.upper_95[1] == pytest.approx(last * math.exp(0.015 + 3.0 * 0.1 * math.sqrt(5)))
    assert two.p_up.tolist() == [0.4, 0.4]  # the horizon's own P(up) pair
    one = forecast_arrays(HAND, closes, np.array([0, 1]))
    assert one.sigma[0] == pytest.approx(0.025, rel=1e-12)
    assert one.mu[0] == pytest.approx(0.01, rel=1e-12)
    assert one.upper_80[0] == pytest.approx(last * math.exp(0.01 + 0.025))
    assert one.p_up.tolist() == [0.5, 0.5]


def test_the_forecaster_serves_horizons_up_to_its_own(tmp_path: Path) -> None:
    save_distribution(tmp_path / "m" / "1", HAND, {"name": "m", "version": "1", "interval": "4h"})
    forecaster = load_distribution(tmp_path / "m" / "1")
    assert forecaster.horizons == HAND.horizons == 2
    window = [candle(i, close) for i, close in enumerate(CLOSES)]
    slot = target_slot(window[-1]) % 3
    expected = forecast_arrays(HAND, np.array([CLOSES]), np.array([slot]), horizon=2)
    [two] = forecaster.predict_distribution([window], horizon=2)
    assert (two.point, two.lower_80, two.upper_95, two.p_up) == (
        expected.point[0],
        expected.lower_80[0],
        expected.upper_95[0],
        expected.p_up[0],
    )
    assert forecaster.predict([window], horizon=2) == [two.point]
    assert forecaster.predict_distribution([], horizon=2) == []
    for horizon in (0, 3):
        with pytest.raises(ValueError, match=r"horizons 1 \.\. 2"):
            forecaster.predict_distribution([window], horizon=horizon)


def test_horizon_quantiles_round_trip_and_must_be_contiguous(tmp_path: Path) -> None:
    coins = {2: {"ETH": (-2.0, 2.0, -4.0, 4.0)}}
    params = DistributionParams(
        3,
        1.0,
        0.0,
        (1.0,),
        (-1.0, 1.0, -2.0, 2.0),
        horizon_quantiles={2: (-1.5, 1.5, -3.0, 3.0), 3: (-1.6, 1.6, -3.2, 3.2)},
        horizon_coin_quantiles=coins,
    )
    assert params.horizons == 3
    assert params.quantiles_at(2, ["ETH", "NEW"]).tolist() == [[-2, 2, -4, 4], [-1.5, 1.5, -3, 3]]
    assert params.p_up_at(3) == (params.p_up_intercept, params.p_up_tie_slope)
    save_distribution(tmp_path / "m" / "1", params, {"name": "m", "version": "1"})
    assert load_distribution(tmp_path / "m" / "1").params == params
    assert list(params.to_json()["horizon_quantiles"]) == ["2", "3"]
    with pytest.raises(ValueError, match=r"2 \.\. H"):
        DistributionParams(3, 1.0, 0.0, (1.0,), (-1, 1, -2, 2), horizon_quantiles={3: (0, 0, 0, 0)})
    with pytest.raises(ValueError, match="without quantiles"):
        DistributionParams(3, 1.0, 0.0, (1.0,), (-1, 1, -2, 2), horizon_p_up={2: (0.5, 0.0)})


def test_an_artifact_without_horizons_keeps_its_hash_and_serves_one_step() -> None:
    body = json.loads((SHIPPED / "model.json").read_text())
    forecaster = load_distribution(SHIPPED)  # checks the recorded hash
    data = forecaster.params.to_json()
    assert not {"horizon_quantiles", "horizon_coin_quantiles", "horizon_p_up"} & set(data)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert digest == body["params_sha256"]
    assert forecaster.horizons == 1 and forecaster.slot_seconds == 4 * 3600
    windows = _btc_windows(forecaster.window, 1)
    with pytest.raises(ValueError, match=r"horizons 1 \.\. 1, not 2"):
        forecaster.predict_distribution(windows, horizon=2)


@cache
def _btc_tail() -> tuple[np.ndarray, np.ndarray]:
    series = read_series(DATA / "BTC_4h.csv.gz", "BTC")
    return series.times[-200:], series.ohlcv[-200:]


def _btc_windows(size: int, count: int) -> list[list[Candle]]:
    """The last ``count`` windows of the bundled BTC 4-hour candles."""
    times, ohlcv = (a[-(size + count) :] for a in _btc_tail())
    candles = [
        Candle(
            symbol="BTC",
            interval="4h",
            open_time=datetime.fromtimestamp(float(t), UTC),
            close_time=datetime.fromtimestamp(float(t), UTC) + timedelta(hours=4),
            open=float(o),
            high=float(h),
            low=float(lo),
            close=float(c),
            volume=float(v),
            source="test",
        )
        for t, (o, h, lo, c, v) in zip(times, ohlcv, strict=True)
    ]
    return [candles[i : i + size] for i in range(count)]


def _one_step_before_horizons(
    params: DistributionParams, closes: np.ndarray, slots: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """The one-step computation as it was before horizons, operation for operation."""
    seasonal = np.asarray(params.seasonal, dtype=np.float64)
    period = len(seasonal)
    base = params.weights()
    count = len(base)
    offsets = count - np.arange(count)
    table = base[None, :] / seasonal[(np.arange(period)[:, None] - offsets[None, :]) % period] ** 2
    last = closes[:, -1]
    returns = np.diff(np.log(closes), axis=1)
    slots = slots % period
    variance = np.einsum("ij,ij->i", returns * returns, table[slots])
    sigma = np.maximum(np.sqrt(variance), params.sigma_floor) * seasonal[slots]
    mu = np.zeros(len(last))
    if params.drift_coef:
        mu = mu + params.drift_coef * returns.mean(axis=1)
    if params.reversal_coef:
        mu = mu + params.reversal_coef * returns[:, -1]
    bounds = last[:, None] * np.exp(mu[:, None] + sigma[:, None] * q)
    ties = (returns == 0).mean(axis=1)
    p_up = np.clip(params.p_up_intercept + params.p_up_tie_slope * ties, 0.0, 1.0)
    return np.column_stack([last * np.exp(mu), bounds, p_up])


def test_one_step_is_bit_for_bit_the_code_before_horizons_for_every_4h_artifact() -> None:
    shipped = load_distribution(SHIPPED)
    windows = _btc_windows(shipped.window, 8)
    closes = np.array([[c.close for c in w] for w in windows])
    slots = np.array([int(w[-1].close_time.timestamp()) // (4 * 3600) for w in windows])
    q = shipped.params.quantiles_for(["BTC"] * len(windows))
    expected = _one_step_before_horizons(shipped.params, closes, slots, q)
    for folder in sorted((BUNDLED_ARTIFACTS / "dist-4h").iterdir()):
        forecaster = load_distribution(folder)
        served = np.array(
            [list(vars(f).values()) for f in forecaster.predict_distribution(windows)]
        )
        assert np.array_equal(served, expected), folder.name  # same one-step params, same bits


def test_the_bundled_horizon_artifacts() -> None:
    loaded = [load_distribution(f) for f in (BUNDLED_ARTIFACTS / "dist-4h").iterdir()]
    [four] = [forecaster for forecaster in loaded if forecaster.horizons > 1]
    assert four.horizons == 6 == four.metadata["horizon"]
    windows = _btc_windows(four.window, 2)
    bands = [four.predict_distribution(windows, h)[0] for h in range(1, 7)]
    for f in bands:
        assert f.lower_95 < f.lower_80 < f.point < f.upper_80 < f.upper_95
    widths = [f.upper_80 - f.lower_80 for f in bands]
    assert widths == sorted(widths)  # a longer horizon, a wider band (same window)
    [daily] = [load_distribution(f) for f in (BUNDLED_ARTIFACTS / "dist-1d").iterdir()]
    assert daily.horizons == 7 and daily.metadata["interval"] == "1d"
    assert daily.slot_seconds == 86400 and len(daily.params.seasonal) in (1, 7)
    assert daily.skill.mase == daily.metadata["test_metrics"]["pooled"]["model"]["mae_ratio"]
    [card] = daily.cards(["BTC"], "1d")
    assert (
        card.evaluation["model"].n == daily.metadata["test_metrics"]["coins"]["BTC"]["model"]["n"]
    )


def _day(open_time: datetime, close: float) -> Candle:
    return Candle(
        symbol="BTC",
        interval="1d",
        open_time=open_time,
        close_time=open_time + timedelta(days=1),
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
        source="test",
    )


def test_a_daily_artifacts_slot_is_the_day_of_the_week(tmp_path: Path) -> None:
    # Day 0 of the epoch, 1970-01-01, was a Thursday: slot % 7 = (weekday - 3) % 7.
    monday = datetime(2025, 1, 6, tzinfo=UTC)
    assert target_slot(_day(monday, 1.0), 86400) % 7 == (1 - 3) % 7  # the next day: Tuesday
    # Seven factors, one per weekday slot; flat returns but for the window's two moves.
    factors = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    params = DistributionParams(3, 1.0, 0.0, factors, (-1.0, 1.0, -2.0, 2.0))
    save_distribution(tmp_path / "d" / "1", params, {"name": "d", "version": "1", "interval": "1d"})
    forecaster = load_distribution(tmp_path / "d" / "1")
    assert forecaster.slot_seconds == 86400
    window = [_day(monday - timedelta(days=2 - i), c) for i, c in enumerate(CLOSES)]
    [forecast] = forecaster.predict_distribution([window])
    # Target: Tuesday, slot 5 (factor 6); the returns close on Sunday (slot 3, factor 4) and
    # Monday (slot 4, factor 5): variance (1/3)(0.01 / 16) + (2/3)(0.0025 / 25), times 6.
    sigma = 6 * math.sqrt(0.01 / 48 + 0.005 / 75)
    assert forecast.upper_80 == pytest.approx(CLOSES[-1] * math.exp(sigma), rel=1e-12)


def test_daily_candles_from_four_hour_ones_and_targets_ahead() -> None:
    day = 86400
    # Day 0 complete (six candles), day 1 missing its 08:00 candle, day 2 complete.
    hours = [0, 4, 8, 12, 16, 20]
    times = np.array(
        [h * 3600 for h in hours]
        + [day + h * 3600 for h in hours if h != 8]
        + [2 * day + h * 3600 for h in hours],
        dtype=np.float64,
    )
    closes = np.arange(1.0, len(times) + 1)
    ohlcv = np.column_stack([closes - 0.5, closes + 1, closes - 1, closes, np.ones_like(closes)])
    days, daily = daily_candles(times, ohlcv)
    assert days.tolist() == [0, 2 * day]
    assert daily.tolist() == [[0.5, 7.0, 0.0, 6.0, 6.0], [11.5, 18.0, 11.0, 17.0, 6.0]]
    # Targets 2 candles ahead need both candles, no gap: from windows of 2 closes.
    coin = make_coin("X", np.array([0, 1, 2, 4, 5, 6]) * 14400.0, np.arange(1.0, 7.0), 2)
    two = ahead(coin, 2)  # the first spans the gap, the second runs past the last candle
    assert coin.rows is not None and coin.rows.tolist() == [2, 5]
    assert two.valid.tolist() == [False, False]
    three = make_coin("X", np.arange(6) * 14400.0, np.arange(1.0, 7.0), 2)
    assert ahead(three, 2).valid.tolist() == [True, True, True, False]
    assert ahead(three, 2).actual[:3].tolist() == [4.0, 5.0, 6.0]
