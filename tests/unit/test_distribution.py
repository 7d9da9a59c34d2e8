"""The distribution forecaster against values worked out by hand, and its artifact."""

import math
import time
from pathlib import Path

import numpy as np
import pytest

from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS
from cryptocast_inference.distribution import (
    DistributionArtifactError,
    DistributionParams,
    Forecast,
    forecast_arrays,
    load_distribution,
    save_distribution,
    target_slot,
)
from cryptocast_inference.registry import build_predictor
from cryptocast_inference.settings import InferenceSettings
from tests.factories import candle

UP = 100 * math.exp(0.1)
PARAMS = DistributionParams(
    window=3,
    half_life=1.0,
    long_run_weight=0.0,
    seasonal=(1.0,),
    quantiles=(-1.0, 1.0, -2.0, 2.0),
    p_up_tie_slope=-0.5,
)


def test_weights_by_hand() -> None:
    # Two returns, half-life 1: raw weights 0.5, 1 → 1/3, 2/3; a long-run weight of 0.5
    # mixes in 1/2 each: 0.5 * (1/3, 2/3) + 0.25 = (5/12, 7/12).
    assert PARAMS.weights() == pytest.approx([1 / 3, 2 / 3])
    mixed = DistributionParams(3, 1.0, 0.5, (1.0,), (-1, 1, -2, 2))
    assert mixed.weights() == pytest.approx([5 / 12, 7 / 12])


def test_intervals_and_p_up_by_hand() -> None:
    # Returns +0.1 and -0.1: any weights give variance 0.01, sigma 0.1; quantile factors
    # ±1 and ±2 give 100 exp(±0.1) = 90.484 / 110.517 and 100 exp(±0.2) = 81.873 / 122.140.
    # No ties in the window: P(up) = 0.5. The flat window [50, 50, 50] has sigma 0 → the floor
    # 1e-5, and two ties of two: P(up) = 0.5 - 0.5 * 1 = 0.
    f = forecast_arrays(PARAMS, np.array([[100, UP, 100], [50, 50, 50]]), np.array([0, 0]))
    assert f.point.tolist() == [100, 50]
    assert f.sigma == pytest.approx([0.1, 1e-5])
    assert f.lower_80[0] == pytest.approx(90.4837, abs=1e-4)
    assert f.upper_80[0] == pytest.approx(110.5171, abs=1e-4)
    assert f.lower_95[0] == pytest.approx(81.8731, abs=1e-4)
    assert f.upper_95[0] == pytest.approx(122.1403, abs=1e-4)
    assert f.lower_95[1] == pytest.approx(50 * math.exp(-2e-5))
    assert f.p_up.tolist() == pytest.approx([0.5, 0.0])


def test_seasonal_factors_by_hand() -> None:
    # Period 2, factors (0.5, 2). Target in slot 0: the older return is 2 slots back
    # (slot 0, factor 0.5), the newer 1 back (slot 1, factor 2). Deseasonalised variance
    # (1/3)(0.01 / 0.25) + (2/3)(0.01 / 4) = 0.013333 + 0.001667 = 0.015, sigma 0.122474,
    # times the target slot's factor 0.5: 0.061237. In slot 1 the roles swap:
    # (1/3)(0.01 / 4) + (2/3)(0.01 / 0.25) = 0.0275, sigma 0.165831 * 2 = 0.331662.
    seasonal = DistributionParams(3, 1.0, 0.0, (0.5, 2.0), (-1, 1, -2, 2))
    f = forecast_arrays(seasonal, np.array([[100, UP, 100]] * 2), np.array([0, 1]))
    assert f.sigma == pytest.approx([0.5 * math.sqrt(0.015), 2 * math.sqrt(0.0275)])


def test_reversal_moves_the_point_by_hand() -> None:
    # mu = -0.1 * last return (-0.1) = +0.01: point 100 exp(0.01) = 101.005, and the
    # interval is centred on it in log space: 100 exp(0.01 ± 0.1).
    params = DistributionParams(3, 1.0, 0.0, (1.0,), (-1, 1, -2, 2), reversal_coef=-0.1)
    f = forecast_arrays(params, np.array([[100, UP, 100]]), np.array([0]))
    assert f.point[0] == pytest.approx(100 * math.exp(0.01))
    assert f.lower_80[0] == pytest.approx(100 * math.exp(-0.09))


def test_candles_in_forecasts_out(tmp_path: Path) -> None:
    save_distribution(tmp_path / "m" / "1", PARAMS, {"name": "m", "version": "1"})
    forecaster = load_distribution(tmp_path / "m" / "1")
    assert forecaster.window == 3 and forecaster.model.name == "m"
    window = [candle(0, 100.0), candle(1, UP), candle(2, 100.0)]
    [forecast] = forecaster.predict_distribution([window])
    assert isinstance(forecast, Forecast) and forecast.point == 100
    assert forecast.lower_80 == pytest.approx(90.4837, abs=1e-4)
    assert forecaster.predict([window, window]) == [100, 100]
    assert target_slot(window[-1]) == int(window[-1].close_time.timestamp()) // 14400
    with pytest.raises(ValueError, match="3 candles"):
        forecaster.predict_distribution([window[:2]])
    body = (tmp_path / "m" / "1" / "model.json").read_text()
    (tmp_path / "m" / "1" / "model.json").write_text(body.replace('"window": 3', '"window": 4'))
    with pytest.raises(DistributionArtifactError, match="hash"):
        load_distribution(tmp_path / "m" / "1")


def test_a_coin_with_quantiles_of_its_own_gets_them_and_others_the_pooled_ones(
    tmp_path: Path,
) -> None:
    # Same window (sigma 0.1) for ETH, with quantiles (-3, 3, -4, 4), and an unseen coin:
    # ETH's 80% band is 100 exp(±0.3) = 74.082 / 134.986, the other's 100 exp(±0.1).
    params = DistributionParams(
        3, 1.0, 0.0, (1.0,), (-1.0, 1.0, -2.0, 2.0), coin_quantiles={"ETH": (-3.0, 3.0, -4.0, 4.0)}
    )
    assert params.quantiles_for(["ETH", "NEW"]).tolist() == [[-3, 3, -4, 4], [-1, 1, -2, 2]]
    save_distribution(tmp_path / "m" / "1", params, {"name": "m", "version": "1"})
    forecaster = load_distribution(tmp_path / "m" / "1")
    eth, new = forecaster.predict_distribution(
        [
            [candle(i, close, symbol=symbol) for i, close in enumerate((100.0, UP, 100.0))]
            for symbol in ("ETH", "NEW")
        ]
    )
    assert (eth.lower_80, eth.upper_80) == pytest.approx((74.0818, 134.9859), abs=1e-4)
    assert eth.upper_95 == pytest.approx(100 * math.exp(0.4))
    assert (new.lower_80, new.upper_80) == pytest.approx((90.4837, 110.5171), abs=1e-4)
    assert "coin_quantiles" not in PARAMS.to_json()  # older artifacts keep their hash


def test_shipped_artifact_serves_a_hundred_symbols_within_budget() -> None:
    [folder] = sorted((BUNDLED_ARTIFACTS / "dist-4h").iterdir())[-1:]
    forecaster = load_distribution(folder)
    size = forecaster.window
    windows = [
        [candle(i, 100.0 * (1 + 0.01 * ((i * 7 + s) % 5 - 2)), symbol=f"C{s}") for i in range(size)]
        for s in range(100)
    ]
    forecasts = forecaster.predict_distribution(windows)
    for f in forecasts:
        assert f.lower_95 < f.lower_80 < f.upper_80 < f.upper_95 and 0 <= f.p_up <= 1
    best = min(_timed(forecaster.predict_distribution, windows) for _ in range(5))
    assert best < 0.05  # 5 ms is the budget on an idle machine; generous for a busy CI


def _timed(call, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def test_the_shipped_model_has_a_card_per_symbol() -> None:
    forecaster = build_predictor(InferenceSettings(), "4h")
    btc, unknown = forecaster.cards(["BTC", "ZZZ"], "4h")  # type: ignore[attr-defined]
    assert btc.evaluation["model"].n == 2190  # BTC's own final-test year
    assert unknown.evaluation["model"].n > btc.evaluation["model"].n  # the pooled record
    assert btc.evaluation["naive"].mase == 1.0 and btc.window == forecaster.window
    assert btc.beats_naive is forecaster.skill.beats_naive is False  # pooled: not significant
