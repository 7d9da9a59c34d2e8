"""Choose the distribution forecaster by rolling-origin evaluation, then test it once.

    .venv/bin/python -m cryptocast_trainer.select_distribution [--data DIR] [--out DIR]

Folds test on 2021, 2022, 2023 and 2024-01-01 .. 2024-10-23, each trained on everything
before its test period. Candidates (volatility half-life, long-run blend, seasonal pattern,
point model, P(up) model) are fixed on the folds alone; the final test year 2024-10-24 ..
2025-10-23 is then scored once for the fixed choice and the baselines, and the report is
written to docs/forecast-selection.md with the artifact under models/<name>/<version>/.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cryptocast_common.significance import (
    block_bootstrap_mae_ratio,
    brier_score,
    diebold_mariano,
    wilson_interval,
)
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS
from cryptocast_inference.distribution import (
    LEVELS,
    SLOT_SECONDS,
    DistributionParams,
    ForecastArrays,
    forecast_arrays,
    load_distribution,
    save_distribution,
)
from cryptocast_inference.series import read_series

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "services/ingestor/cryptocast_ingestor/data/binance_4h"
REPORT = REPO / "docs/forecast-selection.md"
LSTM = BUNDLED_ARTIFACTS / "lstm-4h" / "20261125-f64027e9"
NAME = "dist-4h"
WINDOW = 120


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


FOLDS = {
    "2021": (_ts("2021-01-01"), _ts("2022-01-01")),
    "2022": (_ts("2022-01-01"), _ts("2023-01-01")),
    "2023": (_ts("2023-01-01"), _ts("2024-01-01")),
    "2024": (_ts("2024-01-01"), _ts("2024-10-24")),
}
FINAL = ("final", (_ts("2024-10-24"), _ts("2025-10-24")))

HALF_LIVES = (6.0, 12.0, 24.0, 48.0)
LONG_RUN = (0.0, 0.25, 0.5)
PERIODS = (1, 6, 42)  # none, time of day, time of week
SHRINK = 0.5  # learned point coefficients are halved before any test
COIN_WEIGHTS = (0.0, 0.5, 1.0)  # of a coin's own z quantiles against the pooled ones
COIN_HISTORY = 1000  # training targets a coin needs for quantiles of its own


@dataclass
class Coin:
    symbol: str
    windows: np.ndarray  # (n, WINDOW) closes
    actual: np.ndarray  # (n,)
    times: np.ndarray  # (n,) open time of the target candle
    base_rate: np.ndarray  # (n,) share of up candles among all earlier candles of the coin
    all_times: np.ndarray  # every candle's open time
    all_returns: np.ndarray  # every candle's log return (first is 0), across gaps too

    @property
    def slots(self) -> np.ndarray:
        return (self.times // SLOT_SECONDS).astype(np.int64)

    @property
    def last(self) -> np.ndarray:
        return self.windows[:, -1]


def load_coins(folder: Path, window: int = WINDOW) -> list[Coin]:
    coins = []
    for path in sorted(folder.glob("*_4h.csv.gz")):
        series = read_series(path, path.name.split("_")[0])
        coins.append(make_coin(series.symbol, series.times, series.ohlcv[:, 3], window))
    return coins


def make_coin(symbol: str, times: np.ndarray, closes: np.ndarray, window: int = WINDOW) -> Coin:
    """A coin's windows and targets from its candles' open times (seconds, ascending, on the
    4-hour grid, gaps allowed) and closes."""
    times = np.asarray(times, dtype=np.float64)
    closes = np.asarray(closes, dtype=np.float64)
    returns = np.diff(np.log(closes), prepend=np.log(closes[0]))
    ups = np.cumsum(returns > 0)
    # target j needs candles j - window .. j on the grid, no gap
    j = np.arange(window, len(closes))
    ok = times[j] - times[j - window] == window * SLOT_SECONDS
    j = j[ok]
    windows = sliding_window_view(closes, window)[j - window]
    # before target j: ups among returns 1 .. j - 1 (of candles 1 .. j - 1)
    base_rate = ups[j - 1] / np.maximum(j - 1, 1)
    return Coin(symbol, windows, closes[j], times[j], base_rate, times, returns)


def in_period(times: np.ndarray, period: tuple[float, float]) -> np.ndarray:
    return (times >= period[0]) & (times < period[1])


def fit_seasonal(coins: list[Coin], end: float, period: int) -> tuple[float, ...]:
    """Per coin, mean |return| per slot over the overall mean; the median over coins."""
    if period == 1:
        return (1.0,)
    ratios = []
    for coin in coins:
        mask = (coin.all_times < end) & (np.arange(len(coin.all_times)) > 0)
        if mask.sum() < 50 * period:
            continue
        r = np.abs(coin.all_returns[mask])
        slot = (coin.all_times[mask] // SLOT_SECONDS).astype(np.int64) % period
        per_slot = np.bincount(slot, weights=r, minlength=period) / np.bincount(
            slot, minlength=period
        )
        ratios.append(per_slot / r.mean())
    factors = np.median(ratios, axis=0)
    factors /= np.sqrt(np.mean(factors**2))
    return tuple(float(f) for f in factors)


def coin_forecasts(params: DistributionParams, coin: Coin, mask: np.ndarray) -> ForecastArrays:
    return forecast_arrays(
        params, coin.windows[mask], coin.slots[mask], params.quantiles_for([coin.symbol])[0]
    )


def sigmas(params: DistributionParams, coin: Coin, mask: np.ndarray) -> np.ndarray:
    return coin_forecasts(params, coin, mask).sigma


def fit_params(
    coins: list[Coin],
    end: float,
    half_life: float,
    long_run: float,
    period: int,
    point: str = "naive",
    p_up: str = "half",
    coin_weight: float = 0.0,
) -> DistributionParams:
    """Everything fitted on candles whose targets open before ``end``; each coin with
    ``COIN_HISTORY`` training targets gets quantiles ``coin_weight`` of its own and the rest
    pooled."""
    params = DistributionParams(
        WINDOW, half_life, long_run, fit_seasonal(coins, end, period), (0.0, 0.0, 0.0, 0.0)
    )
    zs, xs_drift, xs_rev, ys, ties, ups, symbols = [], [], [], [], [], [], []
    for coin in coins:
        mask = coin.times < end
        if not mask.any():
            continue
        symbols.append(coin.symbol)
        sigma = sigmas(params, coin, mask)
        target = np.log(coin.actual[mask] / coin.last[mask])
        zs.append(target / sigma)
        returns = np.diff(np.log(coin.windows[mask][:, -2:]), axis=1)[:, 0]
        xs_drift.append(np.log(coin.last[mask] / coin.windows[mask][:, 0]) / (WINDOW - 1))
        xs_rev.append(returns)
        ys.append(target)
        ties.append(np.diff(np.log(coin.windows[mask]), axis=1) == 0)
        ups.append(target > 0)
    z = np.concatenate(zs)
    pooled = np.quantile(z, LEVELS)
    own = {
        symbol: coin_weight * np.quantile(coin_z, LEVELS) + (1 - coin_weight) * pooled
        for symbol, coin_z in zip(symbols, zs, strict=True)
        if len(coin_z) >= COIN_HISTORY
    }
    params = replace(
        params,
        quantiles=_floats(pooled),
        coin_quantiles={symbol: _floats(q) for symbol, q in own.items()} if coin_weight else {},
    )
    y = np.concatenate(ys)
    if point == "drift":
        x = np.concatenate(xs_drift)
        params = replace(params, drift_coef=SHRINK * float(x @ y / (x @ x)))
    elif point == "reversal":
        x = np.concatenate(xs_rev)
        params = replace(params, reversal_coef=SHRINK * float(x @ y / (x @ x)))
    if p_up == "ties":  # P(up) = P(no tie) / 2: symmetric moves, ties are not ups
        params = replace(params, p_up_tie_slope=-0.5)
    elif p_up == "fitted":  # least squares of the up indicator on the window's tie share
        tie = np.concatenate([t.mean(axis=1) for t in ties])
        up = np.concatenate(ups).astype(float)
        design = np.column_stack([np.ones_like(tie), tie])
        (a, b), *_ = np.linalg.lstsq(design, up, rcond=None)
        params = replace(params, p_up_intercept=float(a), p_up_tie_slope=float(b))
    return params


def _floats(values: np.ndarray) -> tuple[float, float, float, float]:
    a, b, c, d = (float(v) for v in values)
    return a, b, c, d


def constant_width(coin: Coin, end: float) -> tuple[float, float, float, float] | None:
    """The coin's training quantiles of next log returns: a constant-width interval."""
    mask = coin.times < end
    if mask.sum() < 500:
        return None
    target = np.log(coin.actual[mask] / coin.last[mask])
    return _floats(np.quantile(target, LEVELS))


def interval_score(lower: np.ndarray, upper: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Gneiting and Raftery's interval score (lower is better), in log-return units."""
    return (
        (upper - lower)
        + (2 / alpha) * np.maximum(lower - y, 0)
        + (2 / alpha) * np.maximum(y - upper, 0)
    )


def score_period(
    coins: list[Coin], params: DistributionParams, period: tuple[float, float], end: float
) -> dict[str, Any]:
    """Per-coin and pooled fold scores of a parameter set (everything scale-free)."""
    per_coin = {}
    for coin in coins:
        mask = in_period(coin.times, period)
        const = constant_width(coin, end)
        if mask.sum() < 200 or const is None:
            continue
        f = coin_forecasts(params, coin, mask)
        last, y = coin.last[mask], np.log(coin.actual[mask] / coin.last[mask])
        lo80, hi80 = np.log(f.lower_80 / last), np.log(f.upper_80 / last)
        lo95, hi95 = np.log(f.lower_95 / last), np.log(f.upper_95 / last)
        up = y > 0
        is_model = (
            interval_score(lo80, hi80, y, 0.2).mean() + interval_score(lo95, hi95, y, 0.05).mean()
        )
        is_const = (
            interval_score(np.full_like(y, const[0]), np.full_like(y, const[1]), y, 0.2).mean()
            + interval_score(np.full_like(y, const[2]), np.full_like(y, const[3]), y, 0.05).mean()
        )
        per_coin[coin.symbol] = {
            "n": int(mask.sum()),
            "cov80": float(((y >= lo80) & (y <= hi80)).mean()),
            "cov95": float(((y >= lo95) & (y <= hi95)).mean()),
            "relative_interval_score": float(is_model / is_const),
            "mae_ratio": float(
                np.abs(coin.actual[mask] - f.point).sum() / np.abs(coin.actual[mask] - last).sum()
            ),
            "brier": float(np.mean((f.p_up - up) ** 2)),
            "brier_base": float(np.mean((coin.base_rate[mask] - up) ** 2)),
            "rel_model": np.abs(coin.actual[mask] - f.point) / last,
            "rel_naive": np.abs(coin.actual[mask] - last) / last,
        }
    values = list(per_coin.values())
    model = np.concatenate([v.pop("rel_model") for v in values])
    naive = np.concatenate([v.pop("rel_naive") for v in values])
    pooled = {
        "coins": len(values),
        "relative_interval_score": float(np.mean([v["relative_interval_score"] for v in values])),
        "calibration_error": float(
            np.mean([abs(v["cov80"] - 0.8) + abs(v["cov95"] - 0.95) for v in values])
        ),
        "max_coverage_miss": float(
            max(max(abs(v["cov80"] - 0.8), abs(v["cov95"] - 0.95)) for v in values)
        ),
        "mae_ratio": float(model.sum() / naive.sum()),
        "brier_wins": sum(v["brier"] <= v["brier_base"] for v in values),
        "brier": float(np.mean([v["brier"] for v in values])),
        "brier_base": float(np.mean([v["brier_base"] for v in values])),
    }
    return {"pooled": pooled, "coins": per_coin}


def scored_folds(coins: list[Coin], *model: Any) -> dict[str, tuple[DistributionParams, Any]]:
    """Per fold: the parameters ``fit_params(coins, <fold start>, *model)`` fits on the
    candles before it, and ``score_period``'s scores of them on the fold."""
    scored = {}
    for name, test in FOLDS.items():
        params = fit_params(coins, test[0], *model)
        scored[name] = params, score_period(coins, params, test, test[0])
    return scored


def fold_mean(folds: dict[str, dict[str, Any]], score: str) -> float:
    return float(np.mean([fold[score] for fold in folds.values()]))


def select(coins: list[Coin], log: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Volatility candidates first (naive point, P(up) 1/2), then point and P(up) models."""
    grid: dict[str, dict[str, Any]] = {}
    for half_life, long_run, period in itertools.product(HALF_LIVES, LONG_RUN, PERIODS):
        key = f"hl{half_life:g}-lr{long_run:g}-p{period}"
        scored = scored_folds(coins, half_life, long_run, period)
        folds = {name: scores["pooled"] for name, (_, scores) in scored.items()}
        grid[key] = {
            "half_life": half_life,
            "long_run_weight": long_run,
            "period": period,
            "folds": folds,
            "relative_interval_score": fold_mean(folds, "relative_interval_score"),
            "calibration_error": fold_mean(folds, "calibration_error"),
        }
        log(
            f"  {key}: relative interval score {grid[key]['relative_interval_score']:.4f}, "
            f"calibration error {grid[key]['calibration_error']:.4f}"
        )
    best = min(grid, key=lambda k: grid[k]["relative_interval_score"])
    chosen = grid[best]
    log(f"volatility: {best}")
    volatility = (chosen["half_life"], chosen["long_run_weight"], chosen["period"])
    others = {}
    for point, p_up in [
        ("drift", "half"),
        ("reversal", "half"),
        ("naive", "ties"),
        ("naive", "fitted"),
    ]:
        folds = {}
        for name, (params, scored) in scored_folds(coins, *volatility, point, p_up).items():
            folds[name] = scored["pooled"] | {
                "coins_worse_brier": sorted(
                    s for s, v in scored["coins"].items() if v["brier"] > v["brier_base"]
                )
            }
            if point != "naive":
                folds[name]["coef"] = params.drift_coef or params.reversal_coef
        others[f"{point}/{p_up}"] = folds
        log(
            f"  {point}/{p_up}: "
            + ", ".join(
                f"{k} MAE ratio {v['mae_ratio']:.5f} Brier {v['brier']:.5f} vs base "
                f"{v['brier_base']:.5f}"
                for k, v in folds.items()
            )
        )
    point = "naive"
    for candidate in ("drift", "reversal"):
        folds = others[f"{candidate}/half"]
        survives = all(f["mae_ratio"] < 1 for f in folds.values())
        if survives and (
            point == "naive"
            or fold_mean(folds, "mae_ratio") < fold_mean(others[f"{point}/half"], "mae_ratio")
        ):
            point = candidate
    half = grid[best]["folds"]

    def brier_rank(folds: dict[str, Any]) -> tuple[int, float]:
        return (
            -sum(f["brier_wins"] for f in folds.values()),
            fold_mean(folds, "brier"),
        )

    p_up_folds = {"half": half, "ties": others["naive/ties"], "fitted": others["naive/fitted"]}
    p_up = min(p_up_folds, key=lambda k: brier_rank(p_up_folds[k]))
    log(f"point: {point}; p_up: {p_up}")
    calibration = {}
    for weight in COIN_WEIGHTS:
        folds = {}
        for name, (_, scored) in scored_folds(coins, *volatility, point, p_up, weight).items():
            folds[name] = scored["pooled"] | {
                "coins_off_by_2pp": sum(
                    max(abs(v["cov80"] - 0.8), abs(v["cov95"] - 0.95)) > 0.02
                    for v in scored["coins"].values()
                )
            }
        calibration[weight] = folds
        log(
            f"  coin weight {weight:g}: calibration error "
            f"{fold_mean(folds, 'calibration_error') * 100:.2f} pp"
        )
    coin_weight = min(
        COIN_WEIGHTS,
        key=lambda w: fold_mean(calibration[w], "calibration_error"),
    )
    log(f"coin quantile weight: {coin_weight:g}")
    return (
        {
            "volatility": best,
            "half_life": chosen["half_life"],
            "long_run_weight": chosen["long_run_weight"],
            "period": chosen["period"],
            "point": point,
            "p_up": p_up,
            "coin_weight": coin_weight,
        },
        {"grid": grid, "point_and_p_up": others, "coin_weight": calibration},
    )


def coverage_by_volatility(
    coins: list[Coin], fold_params: dict[str, DistributionParams]
) -> dict[str, list[list[float]]]:
    """80% coverage per tercile of forecast volatility (calm, middle, wild), per coin-fold,
    of the model and of the coin's constant band fitted on the same training data: an
    interval that is only right on average is wrong when it matters."""
    out: dict[str, list[list[float]]] = {"model": [[], [], []], "constant": [[], [], []]}
    for name, test in FOLDS.items():
        for coin in coins:
            mask = in_period(coin.times, test)
            const = constant_width(coin, test[0])
            if mask.sum() < 200 or const is None:
                continue
            f = coin_forecasts(fold_params[name], coin, mask)
            y = np.log(coin.actual[mask] / coin.last[mask])
            low, high = np.log(f.lower_80 / coin.last[mask]), np.log(f.upper_80 / coin.last[mask])
            tercile = np.digitize(f.sigma, np.quantile(f.sigma, [1 / 3, 2 / 3]))
            for k in range(3):
                part = tercile == k
                out["model"][k].append(
                    float(((y[part] >= low[part]) & (y[part] <= high[part])).mean())
                )
                out["constant"][k].append(
                    float(((y[part] >= const[0]) & (y[part] <= const[1])).mean())
                )
    return out


def _tercile_table(terciles: dict[str, list[list[float]]]) -> str:
    lines = ["| 80% interval | calm third | middle third | wild third |", "|---|---|---|---|"]
    for name, label in (
        ("model", "served (volatility-scaled)"),
        ("constant", "constant band (training quantiles)"),
    ):
        cells = [
            f"{np.mean(v) * 100:.1f}% ({np.min(v) * 100:.1f} .. {np.max(v) * 100:.1f})"
            for v in terciles[name]
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- final test, once


def lstm_forecasts(coin: Coin, mask: np.ndarray, folder: Path) -> np.ndarray | None:
    """The old shipped LSTM's NumPy serving path on the same windows (last 26 candles)."""
    try:
        from cryptocast_inference.features import WARMUP, compute_features
        from cryptocast_inference.lstm import load_artifact
    except ImportError:
        return None
    artifact = load_artifact(folder)
    needed = artifact.window + WARMUP
    # the bundle has no OHLV in the windows array: rebuild (n, needed, 5) from the file
    return _lstm_cache[coin.symbol](artifact, needed, compute_features, mask)


_lstm_cache: dict[str, Any] = {}


def _register_lstm(coin: Coin, path: Path) -> None:
    series = read_series(path, coin.symbol)
    index = {t: i for i, t in enumerate(series.times.tolist())}

    def run(artifact: Any, needed: int, compute_features: Any, mask: np.ndarray) -> np.ndarray:
        rows = np.array([index[t] for t in coin.times[mask].tolist()])
        ohlcv = sliding_window_view(series.ohlcv, needed, axis=0).transpose(0, 2, 1)
        inputs = ohlcv[rows - needed]
        return artifact.forecaster.closes(compute_features(inputs), inputs[:, -1, 3])

    _lstm_cache[coin.symbol] = run


# The test of a forecast whose errors are the no-change forecast's, to the last candle.
NO_CHANGE_TEST = {"mae_ratio_ci": [1.0, 1.0], "dm": 0.0, "dm_p": 1.0}


def mae_ratio_test(errors: np.ndarray, naive: np.ndarray, seed: int) -> dict[str, Any]:
    """The MAE ratio's block-bootstrap interval and the Diebold-Mariano test against the
    no-change forecast's errors."""
    ci = block_bootstrap_mae_ratio(errors.tolist(), naive.tolist(), seed=seed)
    dm = diebold_mariano(errors.tolist(), naive.tolist())
    return {"mae_ratio_ci": [ci.lower, ci.upper], "dm": dm.statistic, "dm_p": dm.p_value}


def direction_scores(moves: np.ndarray, calls: np.ndarray) -> dict[str, Any]:
    """How often the direction called was the move's, over the candles where neither the
    move nor the call is flat (the others are ties), with its Wilson interval."""
    judged = (moves != 0) & (calls != 0)
    right = int((moves[judged] == calls[judged]).sum())
    return {
        "direction_judged": int(judged.sum()),
        "direction_ties": int((~judged).sum()),
        "direction": right / judged.sum() if judged.any() else None,
        "direction_ci": list(wilson_interval(right, int(judged.sum()))),
    }


def point_metrics(
    predicted: np.ndarray, actual: np.ndarray, last: np.ndarray, seed: int
) -> dict[str, Any]:
    errors, naive = np.abs(predicted - actual), np.abs(last - actual)
    out: dict[str, Any] = {"n": len(actual)}
    out["mae_ratio"] = float(errors.sum() / naive.sum())
    out |= NO_CHANGE_TEST if np.array_equal(errors, naive) else mae_ratio_test(errors, naive, seed)
    return out | direction_scores(np.sign(actual - last), np.sign(predicted - last))


def pooled_point(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], seed: int
) -> dict[str, Any]:
    """Scale-free pooling: per target time, the sums over coins of |error| / last close."""
    times = np.concatenate([p[0] for p in parts])
    model = np.concatenate([np.abs(p[1] - p[2]) / p[3] for p in parts])
    naive = np.concatenate([np.abs(p[3] - p[2]) / p[3] for p in parts])
    order = np.unique(times, return_inverse=True)[1]
    m = np.bincount(order, weights=model)
    v = np.bincount(order, weights=naive)
    out: dict[str, Any] = {"n": len(times), "mae_ratio": float(m.sum() / v.sum())}
    out |= NO_CHANGE_TEST if np.array_equal(model, naive) else mae_ratio_test(m, v, seed)
    calls = np.concatenate([np.sign(p[1] - p[3]) for p in parts])
    moves = np.concatenate([np.sign(p[2] - p[3]) for p in parts])
    return out | direction_scores(moves, calls)


def final_test(coins: list[Coin], params: DistributionParams, data: Path) -> dict[str, Any]:
    test = FINAL[1]
    results: dict[str, Any] = {"coins": {}, "pooled": {}}
    parts: dict[str, list[Any]] = {"model": [], "drift": [], "lstm": []}
    interval_rows = []
    for i, coin in enumerate(coins):
        mask = in_period(coin.times, test)
        const = constant_width(coin, test[0])
        if mask.sum() < 200 or const is None:
            continue
        f = coin_forecasts(params, coin, mask)
        last, actual = coin.last[mask], coin.actual[mask]
        drift = last + (last - coin.windows[mask][:, -12]) / 11  # the evaluator's 12-candle drift
        _register_lstm(coin, data / f"{coin.symbol}_4h.csv.gz")
        lstm = lstm_forecasts(coin, mask, LSTM)
        row: dict[str, Any] = {
            "model": point_metrics(f.point, actual, last, seed=i),
            "drift": point_metrics(drift, actual, last, seed=i),
        }
        parts["model"].append((coin.times[mask], f.point, actual, last))
        parts["drift"].append((coin.times[mask], drift, actual, last))
        if lstm is not None:
            row["lstm"] = point_metrics(lstm, actual, last, seed=i)
            parts["lstm"].append((coin.times[mask], lstm, actual, last))
        inside80 = (actual >= f.lower_80) & (actual <= f.upper_80)
        inside95 = (actual >= f.lower_95) & (actual <= f.upper_95)
        y = np.log(actual / last)
        abs_y = np.abs(y)
        cov80, cov95 = float(inside80.mean()), float(inside95.mean())
        up = actual > last
        row["intervals"] = {
            "cov80": cov80,
            "cov95": cov95,
            "cov80_ci": list(wilson_interval(int(inside80.sum()), int(mask.sum()))),
            "cov95_ci": list(wilson_interval(int(inside95.sum()), int(mask.sum()))),
            "width80": float(np.mean((f.upper_80 - f.lower_80) / last)),
            "width95": float(np.mean((f.upper_95 - f.lower_95) / last)),
            "const_cov80": float(((y >= const[0]) & (y <= const[1])).mean()),
            "const_cov95": float(((y >= const[2]) & (y <= const[3])).mean()),
            "const_width80": float(np.exp(const[1]) - np.exp(const[0])),
            "const_width95": float(np.exp(const[3]) - np.exp(const[2])),
            # the symmetric constant-width interval that has exactly the model's coverage
            "same_cov_width80": float(2 * np.sinh(np.quantile(abs_y, cov80))),
            "same_cov_width95": float(2 * np.sinh(np.quantile(abs_y, cov95))),
            "brier": brier_score(f.p_up.tolist(), up.tolist()),
            "brier_base": brier_score(coin.base_rate[mask].tolist(), up.tolist()),
            "brier_half": brier_score([0.5] * int(mask.sum()), up.tolist()),
            "up_share": float(up.mean()),
        }
        interval_rows.append((inside80, inside95, f, last, y, up, coin.base_rate[mask]))
        results["coins"][coin.symbol] = row
    for name, p in parts.items():
        if p:
            results["pooled"][name] = pooled_point(p, seed=99)
    inside80 = np.concatenate([r[0] for r in interval_rows])
    inside95 = np.concatenate([r[1] for r in interval_rows])
    up = np.concatenate([r[5] for r in interval_rows])
    p_up = np.concatenate([r[2].p_up for r in interval_rows])
    base = np.concatenate([r[6] for r in interval_rows])
    width80 = np.concatenate([(r[2].upper_80 - r[2].lower_80) / r[3] for r in interval_rows])
    width95 = np.concatenate([(r[2].upper_95 - r[2].lower_95) / r[3] for r in interval_rows])
    results["pooled"]["intervals"] = {
        "cov80": float(inside80.mean()),
        "cov95": float(inside95.mean()),
        "width80": float(width80.mean()),
        "width95": float(width95.mean()),
        "brier": float(np.mean((p_up - up) ** 2)),
        "brier_base": float(np.mean((base - up) ** 2)),
        "brier_half": float(np.mean((0.5 - up) ** 2)),
    }
    return results


# ---------------------------------------------------------------- report


def _p(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def _fold_table(selection: dict[str, Any], chosen: dict[str, Any]) -> str:
    grid = selection["grid"]
    lines = [
        "| candidate (half-life, long-run weight, seasonal period) | mean relative interval "
        "score | mean calibration error | worst coin-fold coverage miss |",
        "|---|---:|---:|---:|",
    ]
    for key, g in sorted(grid.items(), key=lambda kv: kv[1]["relative_interval_score"]):
        worst = max(f["max_coverage_miss"] for f in g["folds"].values())
        mark = " **chosen**" if key == chosen["volatility"] else ""
        lines.append(
            f"| {key}{mark} | {g['relative_interval_score']:.4f} | "
            f"{g['calibration_error'] * 100:.2f} pp | {worst * 100:.1f} pp |"
        )
    return "\n".join(lines)


def _fold_detail(selection: dict[str, Any], chosen: dict[str, Any]) -> str:
    folds = selection["grid"][chosen["volatility"]]["folds"]
    lines = [
        "| fold | coins | relative interval score | calibration error (mean over coins) | "
        "worst coverage miss | Brier p_up=1/2 | Brier base rate | coins where 1/2 ≤ base |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in folds.items():
        lines.append(
            f"| {name} | {f['coins']} | {f['relative_interval_score']:.4f} | "
            f"{f['calibration_error'] * 100:.2f} pp | "
            f"{f['max_coverage_miss'] * 100:.1f} pp | {f['brier']:.5f} | "
            f"{f['brier_base']:.5f} | {f['brier_wins']}/{f['coins']} |"
        )
    return "\n".join(lines)


def _point_folds(selection: dict[str, Any]) -> str:
    lines = [
        "| candidate | " + " | ".join(f"fold {k}" for k in FOLDS) + " |",
        "|---|" + "---:|" * len(FOLDS),
    ]
    for key, folds in selection["point_and_p_up"].items():
        point, p_up = key.split("/")
        if point != "naive":
            cells = [
                f"MAE ratio {f['mae_ratio']:.5f} (coef {f.get('coef', 0):+.4f})"
                for f in folds.values()
            ]
            lines.append(f"| point = {point} (shrunk ×{SHRINK}) | " + " | ".join(cells) + " |")
        else:
            cells = [
                f"Brier {f['brier']:.5f} vs base {f['brier_base']:.5f}, "
                f"{f['brier_wins']}/{f['coins']} coins ≤ base"
                for f in folds.values()
            ]
            lines.append(f"| p_up = {p_up} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _coin_weight_folds(selection: dict[str, Any], chosen: dict[str, Any]) -> str:
    lines = [
        "| weight of the coin's own quantiles | "
        + " | ".join(f"fold {k}" for k in FOLDS)
        + " | mean calibration error |",
        "|---|" + "---:|" * (len(FOLDS) + 1),
    ]
    for weight, folds in selection["coin_weight"].items():
        cells = [
            f"{f['calibration_error'] * 100:.2f} pp, worst {f['max_coverage_miss'] * 100:.1f}"
            f" pp, {f['coins_off_by_2pp']}/{f['coins']} coins off by > 2 pp"
            for f in folds.values()
        ]
        mean = fold_mean(folds, "calibration_error")
        mark = " **chosen**" if weight == chosen["coin_weight"] else ""
        lines.append(f"| {weight:g}{mark} | " + " | ".join(cells) + f" | {mean * 100:.2f} pp |")
    return "\n".join(lines)


def _ci(pair: list[float]) -> str:
    return f"[{pair[0]:.4f}, {pair[1]:.4f}]"


def _final_tables(results: dict[str, Any]) -> str:
    out = []
    for forecast in ("model", "drift", "lstm"):
        title = {
            "model": "served forecast (point)",
            "drift": "drift (12-candle mean change)",
            "lstm": "old LSTM lstm-4h@20261125-f64027e9",
        }[forecast]
        lines = [
            f"#### {title}",
            "",
            "| coin | n | MAE ratio | 95% CI (block bootstrap) | DM | p "
            "| direction (judged, ties) | 95% CI |",
            "|---|---:|---:|---|---:|---:|---|---|",
        ]
        rows = [(s, r[forecast]) for s, r in results["coins"].items() if forecast in r]
        if forecast in results["pooled"]:
            rows.append(("**pooled**", results["pooled"][forecast]))
        for symbol, m in rows:
            direction = (
                "n/a (all ties)"
                if m["direction"] is None
                else f"{_p(m['direction'])} ({m['direction_judged']:,}, {m['direction_ties']:,})"
            )
            low, high = m["direction_ci"]
            dci = "-" if m["direction"] is None else f"[{_p(low)}, {_p(high)}]"
            out_line = (
                f"| {symbol} | {m['n']:,} | {m['mae_ratio']:.4f} | "
                f"{_ci(m['mae_ratio_ci'])} "
                f"| {m['dm']:+.2f} | {m['dm_p']:.3f} | {direction} | {dci} |"
            )
            lines.append(out_line)
        out.append("\n".join(lines))
    lines = [
        "#### Intervals and P(up)",
        "",
        "| coin | cover 80 | cover 95 | width 80 | width 95 | constant (train) cover 80 / 95 "
        "| constant (train) width 80 / 95 | constant width at the same coverage 80 / 95 "
        "| Brier | Brier base rate | Brier 1/2 | up share |",
        "|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for symbol, r in results["coins"].items():
        i = r["intervals"]
        lines.append(
            f"| {symbol} | {_p(i['cov80'], 1)} | {_p(i['cov95'], 1)} | {_p(i['width80'])} | "
            f"{_p(i['width95'])} | {_p(i['const_cov80'], 1)} / {_p(i['const_cov95'], 1)} | "
            f"{_p(i['const_width80'])} / {_p(i['const_width95'])} | "
            f"{_p(i['same_cov_width80'])} / {_p(i['same_cov_width95'])} | {i['brier']:.5f} | "
            f"{i['brier_base']:.5f} | {i['brier_half']:.5f} | {_p(i['up_share'], 1)} |"
        )
    i = results["pooled"]["intervals"]
    lines.append(
        f"| **pooled** | {_p(i['cov80'], 1)} | {_p(i['cov95'], 1)} | {_p(i['width80'])} | "
        f"{_p(i['width95'])} | | | | {i['brier']:.5f} | {i['brier_base']:.5f} | "
        f"{i['brier_half']:.5f} | |"
    )
    out.append("\n".join(lines))
    return "\n\n".join(out)


def goals(results: dict[str, Any]) -> list[str]:
    coins = results["coins"]
    lines = []
    worst_dm = max(coins.items(), key=lambda kv: kv[1]["model"]["dm"])
    pooled = results["pooled"]["model"]
    lines.append(
        f"- Never significantly worse than naive (DM < 1.96 on every coin): "
        f"{'MET' if worst_dm[1]['model']['dm'] < 1.96 else 'NOT MET'} (largest DM "
        f"{worst_dm[1]['model']['dm']:+.2f}, {worst_dm[0]}); pooled MAE ratio "
        f"{pooled['mae_ratio']:.4f} ({'MET' if pooled['mae_ratio'] <= 1 else 'NOT MET'}"
        f" ≤ 1.000; the ambitious ≤ 0.998 with significant DM is "
        f"{'MET' if pooled['mae_ratio'] <= 0.998 and pooled['dm'] < -1.96 else 'NOT MET'}"
        ")."
    )
    misses = {
        s: (r["intervals"]["cov80"] - 0.8, r["intervals"]["cov95"] - 0.95) for s, r in coins.items()
    }
    bad = {s: m for s, m in misses.items() if max(abs(m[0]), abs(m[1])) > 0.02}
    lines.append(
        "- Coverage within 2 points of nominal on every coin: "
        + (
            "MET"
            if not bad
            else "NOT MET on "
            + ", ".join(f"{s} ({_p(0.8 + m[0], 1)} / {_p(0.95 + m[1], 1)})" for s, m in bad.items())
        )
    )
    wider = [
        s
        for s, r in coins.items()
        if r["intervals"]["width80"] > r["intervals"]["same_cov_width80"]
        or r["intervals"]["width95"] > r["intervals"]["same_cov_width95"]
    ]
    wider_train = [
        s
        for s, r in coins.items()
        if r["intervals"]["width80"] > r["intervals"]["const_width80"]
        or r["intervals"]["width95"] > r["intervals"]["const_width95"]
    ]
    lines.append(
        "- Mean width no wider than a constant-width interval of the same coverage: "
        + ("MET on every coin" if not wider else "NOT MET on " + ", ".join(wider))
        + "; against the constant interval fitted on training data: "
        + ("narrower on every coin" if not wider_train else "wider on " + ", ".join(wider_train))
    )
    worse = [s for s, r in coins.items() if r["intervals"]["brier"] > r["intervals"]["brier_base"]]
    lines.append(
        "- Brier at or below the base rate's on every coin: "
        + (
            "MET"
            if not worse
            else "NOT MET on "
            + ", ".join(
                f"{s} ({coins[s]['intervals']['brier']:.5f} vs "
                f"{coins[s]['intervals']['brier_base']:.5f})"
                for s in worse
            )
        )
    )
    return lines


def plain_words(results: dict[str, Any], selection: dict[str, Any], chosen: dict[str, Any]) -> str:
    pooled = results["pooled"]
    model, lstm = pooled["model"], pooled.get("lstm")
    iv = pooled["intervals"]
    folds = selection["point_and_p_up"][f"{chosen['point']}/half"]
    fold_ratios = ", ".join(f"{k} {v['mae_ratio']:.4f}" for k, v in folds.items())
    text = [
        f"- The point forecast is no change plus a halved mean-reversion term on the last "
        f"4-hour return (it was below naive's MAE on every fold: {fold_ratios}). On the final "
        f"year its pooled MAE ratio is {model['mae_ratio']:.4f} (95% CI "
        f"{_ci(model['mae_ratio_ci'])}, DM {model['dm']:+.2f}): an edge of a few hundredths of a "
        'percent that is not significant. Read the point forecast as "about the last close"; '
        "its direction is right about half the time.",
        f"- The intervals are the product: pooled coverage {_p(iv['cov80'], 1)} (80%) and "
        f"{_p(iv['cov95'], 1)} (95%), mean widths {_p(iv['width80'])} and {_p(iv['width95'])} "
        "of the price; they widen and narrow with volatility, so the constant band fitted on "
        "training over-covers in the calmer final year on most coins. Against a constant band "
        "with exactly the same coverage in the test year (an oracle fitted on the test) ours are "
        "a few percent wider on average: volatility forecasts are noisy, and mean width "
        "rewards a band that is too narrow in wild weeks; the interval score (width plus "
        "penalties for misses), which the folds ranked on, favours the adaptive band by about "
        f"{(1 - selection['grid'][chosen['volatility']]['relative_interval_score']) * 100:.0f}%"
        " over the constant one.",
        f"- P(up) carries no usable information at 4 hours: its Brier score {iv['brier']:.5f} is "
        f"within 0.0001 of the base rate's ({iv['brier_base']:.5f}) and of a flat 1/2 "
        f"({iv['brier_half']:.5f}); which one is lower on a coin is noise.",
    ]
    if lstm:
        text.append(
            f"- The old LSTM's pooled MAE ratio on the same year is "
            f"{lstm['mae_ratio']:.4f} (DM {lstm['dm']:+.2f}); it is significantly worse "
            "than naive on some coins "
            "(see its table). The 12-candle drift is worse everywhere (pooled "
            f"{pooled['drift']['mae_ratio']:.4f})."
        )
    return "\n".join(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=BUNDLED_ARTIFACTS)
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--version", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)

    coins = load_coins(args.data)
    log(f"{len(coins)} coins, {sum(len(c.actual) for c in coins):,} windows")
    chosen, selection = select(coins, log)
    choice = (
        chosen["half_life"],
        chosen["long_run_weight"],
        chosen["period"],
        chosen["point"],
        chosen["p_up"],
        chosen["coin_weight"],
    )
    final_params = fit_params(coins, FINAL[1][0], *choice)
    fitted_folds = {name: fit_params(coins, test[0], *choice) for name, test in FOLDS.items()}
    fold_params = {name: params.to_json() for name, params in fitted_folds.items()}
    selection["terciles"] = coverage_by_volatility(coins, fitted_folds)
    # --- the one look at the final test, with everything above fixed
    results = final_test(coins, final_params, args.data)
    log("final test scored")
    first = min(float(c.times.min()) for c in coins)
    digest = hashlib.sha256(json.dumps(final_params.to_json(), sort_keys=True).encode())
    version = args.version or f"{datetime.now(UTC):%Y%m%d}-{digest.hexdigest()[:8]}"
    metadata = {
        "name": NAME,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "kind": "distribution",
        "interval": "4h",
        "horizon": 1,
        "window": WINDOW,
        "features": ["close"],
        "data": {
            "folder": str(args.data.relative_to(REPO))
            if args.data.is_relative_to(REPO)
            else str(args.data),
            "coins": [c.symbol for c in coins],
            "training_range": {
                "first": datetime.fromtimestamp(first, UTC).isoformat(),
                "last_target_before": datetime.fromtimestamp(FINAL[1][0], UTC).isoformat(),
            },
            "final_test": [datetime.fromtimestamp(t, UTC).isoformat() for t in FINAL[1]],
        },
        "selection": chosen,
        "fold_params": fold_params,
        "fold_metrics": {k: v for k, v in selection["grid"][chosen["volatility"]]["folds"].items()},
        "test_metrics": results,
    }
    folder = args.out / NAME / version
    save_distribution(folder, final_params, metadata)
    load_distribution(folder)  # round trip
    log(f"artifact {folder}")
    write_report(args.report, chosen, selection, results, final_params, f"{NAME}@{version}")
    log(f"report {args.report}")
    print("\n".join(goals(results)))


def write_report(
    path: Path,
    chosen: dict[str, Any],
    selection: dict[str, Any],
    results: dict[str, Any],
    params: DistributionParams,
    ref: str,
) -> None:
    text = f"""# Choosing the distribution forecaster (`{ref}`)

Written by `python -m cryptocast_trainer.select_distribution` from the bundled Binance
4-hour set (`services/ingestor/cryptocast_ingestor/data/binance_4h/`, 20 coins, 2017 ..
2025-10-23). Rolling-origin folds test on 2021, 2022, 2023 and 2024-01-01 .. 2024-10-23,
each fitted on every candle before its test period; all choices below were fixed on the
folds. The final test year 2024-10-24 .. 2025-10-23 (18 coins: MATIC and XMR were delisted
before it) was then scored once.

## The model

log(next close / last close) = mu + sigma * z. sigma is an exponentially weighted volatility
of the last {WINDOW - 1} log returns (half-life {params.half_life:g} candles, blended with
the window's plain mean of squares at weight {params.long_run_weight:g}), with the
{"none" if len(params.seasonal) == 1 else f"{len(params.seasonal)}-slot"} seasonal pattern of
4-hour volatility removed from the window and applied to the target slot. z's quantiles at
10/90/2.5/97.5% were fitted on the training period, pooled over coins:
{", ".join(f"{q:+.3f}" for q in params.quantiles)} (a normal would give ±1.282, ±1.960);
{len(params.coin_quantiles)} coins have quantiles of their own, weight
{chosen["coin_weight"]:g} on their own and the rest pooled.
Point forecast: **{chosen["point"]}** (mu = {params.drift_coef:g} × window mean return
{params.reversal_coef:+g} × last return). P(up): **{chosen["p_up"]}**
(intercept {params.p_up_intercept:.4f}, slope on the window's share of unchanged closes
{params.p_up_tie_slope:+.4f}).

## Selection on the folds

Volatility candidates were ranked by the interval score (Gneiting and Raftery; width plus
2/alpha times any miss, lower is better; 80% and 95% summed), per coin divided by that of
the coin's constant-width interval fitted on the same training data, averaged over coins
and folds: below 1 means sharper-and-calibrated beats the constant band. Calibration error
is |coverage 80 − 80%| + |coverage 95 − 95%|, mean over coins.

{_fold_table(selection, chosen)}

The chosen candidate fold by fold (point = no change, p_up = 1/2):

{_fold_detail(selection, chosen)}

Point and P(up) candidates on the chosen volatility. A learned point coefficient (least
squares on training, then halved) is admitted only if its pooled MAE ratio (scale-free:
|error| / last close, summed over coins) is below 1 on every fold; P(up) is ranked by
the number of coin-folds where its Brier score is at or below the base rate's (the running
share of up candles in the coin's history before each target), then by mean Brier.

{_point_folds(selection)}

Then the quantiles of z per coin, on the chosen volatility, point and P(up): each coin with
at least {COIN_HISTORY:,} training targets gets its own quantiles blended with the pooled
ones at the weight below (0 = pooled only), ranked by the mean calibration error over folds.

{_coin_weight_folds(selection, chosen)}

Why the intervals scale with volatility although a constant band can be narrower on
average: on the folds, the chosen model's 80% interval and the constant band, coverage per
third of the coin-fold's candles sorted by forecast volatility (mean over coin-folds, range
in brackets). The constant band is right on average because it over-covers calm markets and
under-covers wild ones, exactly when a user needs it.

{_tercile_table(selection["terciles"])}

## Final test, 2024-10-24 .. 2025-10-23 (looked at once)

MAE ratio is the MAE relative to the no-change forecast on the same candles (per coin in
price units; pooled scale-free: per target time, the sum over coins of |error| / last close,
so the bootstrap and DM run on one time series and cross-coin correlation is respected).
The CI is a moving-block bootstrap (blocks of n^(1/3) candles, 2,000 resamples, seeded). DM
is the Diebold-Mariano statistic of |model error| − |naive error| (Newey-West variance with
floor(4 (n/100)^(2/9)) lags, Harvey-Leybourne-Newbold factor, t reference): positive means
worse than naive, 1.96 is significant at 5%. Direction counts only candles where both the
forecast and the actual close moved; the CI is Wilson's. Widths are the mean of (upper −
lower) / last close. "Constant (train)" is the coin's fixed band of training-period return
quantiles; "constant width at the same coverage" is the symmetric fixed band that would have
covered exactly as often as ours did in the test year (an oracle: it is fitted on the test).

{_final_tables(results)}

### Goals

{chr(10).join(goals(results))}

## What the numbers say

{plain_words(results, selection, chosen)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()
