"""Choose the distribution forecaster by rolling-origin evaluation, then test it once.

    .venv/bin/python -m cryptocast_trainer.select_distribution [--data DIR] [--out DIR]
        [--interval 4h|1d] [--horizons H] [--base NAME@VERSION]

Folds test on 2021, 2022, 2023 and 2024-01-01 .. 2024-10-23, each trained on everything
before its test period. Candidates (volatility half-life, long-run blend, seasonal pattern,
window for daily candles, point model, P(up) model) are fixed on the folds alone; the final
test year 2024-10-24 .. 2025-10-23 is then scored once for the fixed choice and the
baselines, and the report is written to docs/forecast-selection.md (4h) or
docs/forecast-selection-1d.md (1d) with the artifact under models/<name>/<version>/.

``--interval 1d`` builds daily candles from the bundled 4-hour files (a UTC day's candle
from its six 4-hour candles; days missing any of them are left out) and fits ``dist-1d``.

``--horizons H`` also fits, for h = 2 .. H, the quantiles of the standardised h-step return
(pooled over coins) on each fold's training data, checks their coverage on the folds, and
scores every horizon once on the final test year. ``--base NAME@VERSION`` keeps that
artifact's one-step parameters: the selection is still run on the folds and must choose the
same candidate with parameters equal to the base's up to floating-point rounding (the
script stops otherwise); only the horizon quantiles are new.
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
    default_block,
    diebold_mariano,
    newey_west_lags,
    wilson_interval,
)
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS, artifact_dir
from cryptocast_inference.distribution import (
    LEVELS,
    DistributionParams,
    ForecastArrays,
    forecast_arrays,
    load_distribution,
    save_distribution,
    slot_seconds,
)
from cryptocast_inference.series import read_series

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "services/ingestor/cryptocast_ingestor/data/binance_4h"
REPORT = REPO / "docs/forecast-selection.md"
LSTM = BUNDLED_ARTIFACTS / "lstm-4h" / "20261125-f64027e9"
NAME = "dist-4h"
WINDOW = 120
SLOT_SECONDS = slot_seconds("4h")  # the bundled candles' interval
DAY = slot_seconds("1d")


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


@dataclass(frozen=True)
class Setup:
    """What differs between the intervals the script fits."""

    interval: str
    name: str
    windows: tuple[int, ...]  # candidates: closes per forecast
    half_lives: tuple[float, ...]  # candidates, in candles
    periods: tuple[int, ...]  # candidates: seasonal period in candles (1 = none)
    report: Path
    unit: str  # a candle's span in words
    folds: tuple[str, ...] = tuple(FOLDS)  # the folds it is selected on

    @property
    def fold_periods(self) -> dict[str, tuple[float, float]]:
        return {name: FOLDS[name] for name in self.folds}

    @property
    def step(self) -> int:
        return slot_seconds(self.interval)


SETUPS = {
    "4h": Setup("4h", NAME, (WINDOW,), HALF_LIVES, PERIODS, REPORT, "4-hour"),
    # Daily: half-lives of 2 .. 16 days (the 4-hour grid's 1 .. 8 days, one step longer:
    # daily volatility is smoother); the window is chosen on the folds; period 7 is the
    # day of the week.
    "1d": Setup(
        "1d",
        "dist-1d",
        (30, 60, 120),
        (2.0, 4.0, 8.0, 16.0),
        (1, 7),
        REPO / "docs/forecast-selection-1d.md",
        "daily",
        # Exchange outages drop a whole day now and then, and a window may not span a gap:
        # the last such day (2020-02-18) leaves every coin under 200 daily targets with a
        # 120-day window before 2021, too few for the 2021 fold's reference band (500).
        ("2022", "2023", "2024"),
    ),
}


@dataclass
class Coin:
    symbol: str
    windows: np.ndarray  # (n, WINDOW) closes
    actual: np.ndarray  # (n,)
    times: np.ndarray  # (n,) open time of the target candle
    base_rate: np.ndarray  # (n,) share of up candles among all earlier candles of the coin
    all_times: np.ndarray  # every candle's open time
    all_returns: np.ndarray  # every candle's log return (first is 0), across gaps too
    step: int = SLOT_SECONDS  # seconds per candle
    rows: np.ndarray | None = None  # (n,) index of each target in all_times
    all_closes: np.ndarray | None = None

    @property
    def slots(self) -> np.ndarray:
        return (self.times // self.step).astype(np.int64)

    @property
    def last(self) -> np.ndarray:
        return self.windows[:, -1]

    @property
    def window(self) -> int:
        return int(self.windows.shape[1])

    def with_window(self, window: int) -> Coin:
        """The same targets forecast from the last ``window`` closes of each window."""
        return replace(self, windows=self.windows[:, -window:])


def load_coins(folder: Path, window: int = WINDOW, interval: str = "4h") -> list[Coin]:
    """Every bundled coin's 4-hour candles, or its daily candles built from them."""
    coins = []
    for path in sorted(folder.glob("*_4h.csv.gz")):
        series = read_series(path, path.name.split("_")[0])
        times, ohlcv = series.times, series.ohlcv
        if interval == "1d":
            times, ohlcv = daily_candles(times, ohlcv)
        elif interval != "4h":
            raise ValueError(f"the bundled candles make 4h or 1d, not {interval}")
        step = slot_seconds(interval)
        coins.append(make_coin(series.symbol, times, ohlcv[:, 3], window, step))
    return coins


def daily_candles(times: np.ndarray, ohlcv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC days' candles from 4-hour ones (open times ascending, on the 4-hour grid): open of
    the first, highest high, lowest low, close of the last, summed volume; only the days
    whose six 4-hour candles all exist."""
    times = np.asarray(times, dtype=np.int64)
    if len(times) and (times % SLOT_SECONDS).any():
        raise ValueError("4-hour candles must open on the 4-hour grid")
    days, starts, counts = np.unique(times // DAY, return_index=True, return_counts=True)
    full = counts == DAY // SLOT_SECONDS  # distinct open times in one day: all six there
    firsts = starts[full]
    lasts = firsts + counts[full] - 1
    daily = np.column_stack(
        [
            ohlcv[firsts, 0],
            np.maximum.reduceat(ohlcv[:, 1], starts)[full],
            np.minimum.reduceat(ohlcv[:, 2], starts)[full],
            ohlcv[lasts, 3],
            np.add.reduceat(ohlcv[:, 4], starts)[full],
        ]
    )
    return (days[full] * DAY).astype(np.float64), daily


def make_coin(
    symbol: str,
    times: np.ndarray,
    closes: np.ndarray,
    window: int = WINDOW,
    step: int = SLOT_SECONDS,
) -> Coin:
    """A coin's windows and targets from its candles' open times (seconds, ascending, on the
    grid of ``step`` seconds, gaps allowed) and closes."""
    times = np.asarray(times, dtype=np.float64)
    closes = np.asarray(closes, dtype=np.float64)
    returns = np.diff(np.log(closes), prepend=np.log(closes[0]))
    ups = np.cumsum(returns > 0)
    # target j needs candles j - window .. j on the grid, no gap
    j = np.arange(window, len(closes))
    ok = times[j] - times[j - window] == window * step
    j = j[ok]
    windows = sliding_window_view(closes, window)[j - window]
    # before target j: ups among returns 1 .. j - 1 (of candles 1 .. j - 1)
    base_rate = ups[j - 1] / np.maximum(j - 1, 1)
    return Coin(symbol, windows, closes[j], times[j], base_rate, times, returns, step, j, closes)


@dataclass(frozen=True)
class Ahead:
    """The targets ``h`` candles after each window's last candle."""

    valid: np.ndarray  # (n,) that candle exists and no candle in between is missing
    actual: np.ndarray  # (n,) its close (the window's last close where not valid)
    times: np.ndarray  # (n,) its open time
    base_rate: np.ndarray  # (n,) share of h-step ups among those complete at the window's end


def ahead(coin: Coin, horizon: int) -> Ahead:
    """A coin's h-step targets; for one step, the coin's own."""
    if horizon == 1:
        return Ahead(np.ones(len(coin.times), bool), coin.actual, coin.times, coin.base_rate)
    if coin.rows is None or coin.all_closes is None:
        raise ValueError(f"{coin.symbol}: no candle index for targets beyond one step")
    closes, times, j = coin.all_closes, coin.all_times, coin.rows
    k = np.minimum(j + horizon - 1, len(times) - 1)
    valid = (j + horizon - 1 < len(times)) & (times[k] - times[j - 1] == horizon * coin.step)
    # before the target: h-step changes closes[m] / closes[m - h] for m = h .. j - 1
    up = np.zeros(len(closes))
    up[horizon:] = closes[horizon:] > closes[:-horizon]
    known = np.cumsum(up)
    base_rate = known[j - 1] / np.maximum(j - horizon, 1)
    return Ahead(
        valid,
        np.where(valid, closes[k], coin.last),
        times[j - 1] + horizon * coin.step,
        base_rate,
    )


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
        slot = (coin.all_times[mask] // coin.step).astype(np.int64) % period
        per_slot = np.bincount(slot, weights=r, minlength=period) / np.bincount(
            slot, minlength=period
        )
        ratios.append(per_slot / r.mean())
    factors = np.median(ratios, axis=0)
    factors /= np.sqrt(np.mean(factors**2))
    return tuple(float(f) for f in factors)


def coin_forecasts(
    params: DistributionParams,
    coin: Coin,
    mask: np.ndarray,
    horizon: int = 1,
    quantiles: np.ndarray | None = None,
) -> ForecastArrays:
    """The coin's forecasts ``horizon`` candles ahead of the masked windows, with the
    artifact's quantiles of that horizon for the coin unless ``quantiles`` are given."""
    if quantiles is None:
        quantiles = params.quantiles_at(horizon, [coin.symbol])
        quantiles = quantiles[0] if quantiles.ndim == 2 else quantiles
    return forecast_arrays(params, coin.windows[mask], coin.slots[mask], quantiles, horizon=horizon)


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
    window = coins[0].window
    params = DistributionParams(
        window, half_life, long_run, fit_seasonal(coins, end, period), (0.0, 0.0, 0.0, 0.0)
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
        xs_drift.append(np.log(coin.last[mask] / coin.windows[mask][:, 0]) / (window - 1))
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


def constant_width(
    coin: Coin, end: float, horizon: int = 1
) -> tuple[float, float, float, float] | None:
    """The coin's training quantiles of h-step log returns: a constant-width interval."""
    a = ahead(coin, horizon)
    mask = a.valid & (a.times < end)
    if mask.sum() < 500:
        return None
    target = np.log(a.actual[mask] / coin.last[mask])
    return _floats(np.quantile(target, LEVELS))


def with_horizons(params: DistributionParams, horizons: int) -> DistributionParams:
    """The parameters able to forecast ``horizons`` steps, with zero quantiles beyond one
    step: a scaffold for fitting them, whose mu and sigma are the final ones."""
    zero = (0.0, 0.0, 0.0, 0.0)
    return replace(
        params,
        horizon_quantiles={h: zero for h in range(2, horizons + 1)},
        horizon_coin_quantiles={},
        horizon_p_up={},
    )


def horizon_z(
    coins: list[Coin], params: DistributionParams, end: float, horizon: int
) -> dict[str, np.ndarray]:
    """Per coin, the standardised h-step returns (y - mu_h) / sigma_h of the windows whose
    h-step target opens before ``end``."""
    scaffold = with_horizons(params, horizon)
    zs = {}
    for coin in coins:
        a = ahead(coin, horizon)
        mask = a.valid & (a.times < end)
        if not mask.any():
            continue
        f = coin_forecasts(scaffold, coin, mask, horizon, np.zeros(4))
        zs[coin.symbol] = (np.log(a.actual[mask] / coin.last[mask]) - f.mu) / f.sigma
    return zs


def horizon_p_up(
    coins: list[Coin], end: float, horizon: int, model: str
) -> tuple[float, float] | None:
    """P(up) at ``horizon``: None keeps the one-step pair ("same"), "half" is a flat 1/2,
    "fitted" the least squares of the h-step up indicator on the window's share of
    unchanged closes, on the windows whose h-step target opens before ``end``."""
    if model == "same":
        return None
    if model == "half":
        return 0.5, 0.0
    ties, ups = [], []
    for coin in coins:
        a = ahead(coin, horizon)
        mask = a.valid & (a.times < end)
        ties.append((np.diff(coin.windows[mask], axis=1) == 0).mean(axis=1))
        ups.append(a.actual[mask] > coin.last[mask])
    tie = np.concatenate(ties)
    design = np.column_stack([np.ones_like(tie), tie])
    (a0, b0), *_ = np.linalg.lstsq(design, np.concatenate(ups).astype(float), rcond=None)
    return float(a0), float(b0)


def fit_horizons(
    coins: list[Coin],
    params: DistributionParams,
    end: float,
    horizons: int,
    coin_weight: float = 0.0,
    p_up: str = "same",
    zs: dict[int, dict[str, np.ndarray]] | None = None,
) -> DistributionParams:
    """``params`` able to forecast 2 .. ``horizons`` steps: per horizon, the quantiles of
    z_h pooled over coins, each coin's (with ``COIN_HISTORY`` training targets) blended at
    ``coin_weight`` with them, and P(up) as ``p_up`` says; all fitted on the windows whose
    h-step target opens before ``end``. The one-step parameters are kept as they are.
    ``zs``: horizon_z's per horizon, when already computed."""
    pooled, own, p_ups = {}, {}, {}
    for h in range(2, horizons + 1):
        z = horizon_z(coins, params, end, h) if zs is None else zs[h]
        q = np.quantile(np.concatenate(list(z.values())), LEVELS)
        pooled[h] = _floats(q)
        if coin_weight:
            own[h] = {
                symbol: _floats(coin_weight * np.quantile(coin_z, LEVELS) + (1 - coin_weight) * q)
                for symbol, coin_z in z.items()
                if len(coin_z) >= COIN_HISTORY
            }
        pair = horizon_p_up(coins, end, h, p_up)
        if pair is not None:
            p_ups[h] = pair
    return replace(params, horizon_quantiles=pooled, horizon_coin_quantiles=own, horizon_p_up=p_ups)


def interval_score(lower: np.ndarray, upper: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Gneiting and Raftery's interval score (lower is better), in log-return units."""
    return (
        (upper - lower)
        + (2 / alpha) * np.maximum(lower - y, 0)
        + (2 / alpha) * np.maximum(y - upper, 0)
    )


def score_period(
    coins: list[Coin],
    params: DistributionParams,
    period: tuple[float, float],
    end: float,
    horizon: int = 1,
    quantiles: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per-coin and pooled fold scores of a parameter set (everything scale-free) for the
    targets ``horizon`` candles ahead that open in ``period``; ``quantiles`` per coin
    replace the artifact's (a candidate that is not in it)."""
    per_coin = {}
    for coin in coins:
        a = ahead(coin, horizon)
        mask = a.valid & in_period(a.times, period)
        const = constant_width(coin, end, horizon)
        if mask.sum() < 200 or const is None:
            continue
        own = None if quantiles is None else quantiles.get(coin.symbol)
        f = coin_forecasts(params, coin, mask, horizon, own)
        actual = a.actual[mask]
        last, y = coin.last[mask], np.log(actual / coin.last[mask])
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
            "mae_ratio": float(np.abs(actual - f.point).sum() / np.abs(actual - last).sum()),
            "brier": float(np.mean((f.p_up - up) ** 2)),
            "brier_base": float(np.mean((a.base_rate[mask] - up) ** 2)),
            "brier_half": float(np.mean((0.5 - up) ** 2)),
            "rel_model": np.abs(actual - f.point) / last,
            "rel_naive": np.abs(actual - last) / last,
            "inside80": int(((y >= lo80) & (y <= hi80)).sum()),
            "inside95": int(((y >= lo95) & (y <= hi95)).sum()),
            "width80": float(np.mean(np.exp(hi80) - np.exp(lo80))),
            "width95": float(np.mean(np.exp(hi95) - np.exp(lo95))),
        }
    values = list(per_coin.values())
    model = np.concatenate([v.pop("rel_model") for v in values])
    naive = np.concatenate([v.pop("rel_naive") for v in values])
    inside = {level: sum(v.pop(f"inside{level}") for v in values) for level in (80, 95)}
    widths = {level: [v.pop(f"width{level}") for v in values] for level in (80, 95)}
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
    if horizon > 1:  # the one-step records keep the shape of the artifacts before horizons
        n = sum(v["n"] for v in values)
        pooled |= {
            "n": n,
            "cov80_pooled": inside[80] / n,
            "cov95_pooled": inside[95] / n,
            "width80": float(np.mean(widths[80])),
            "width95": float(np.mean(widths[95])),
            "brier_half": float(np.mean([v["brier_half"] for v in values])),
        }
    return {"pooled": pooled, "coins": per_coin}


def scored_folds(
    coins: list[Coin], *model: Any, folds: dict[str, tuple[float, float]] = FOLDS
) -> dict[str, tuple[DistributionParams, Any]]:
    """Per fold: the parameters ``fit_params(coins, <fold start>, *model)`` fits on the
    candles before it, and ``score_period``'s scores of them on the fold."""
    scored = {}
    for name, test in folds.items():
        params = fit_params(coins, test[0], *model)
        scored[name] = params, score_period(coins, params, test, test[0])
    return scored


def fold_mean(folds: dict[str, dict[str, Any]], score: str) -> float:
    return float(np.mean([fold[score] for fold in folds.values()]))


def select(
    coins: list[Coin], log: Any, setup: Setup = SETUPS["4h"]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Volatility candidates first (naive point, P(up) 1/2), then point and P(up) models.
    With several window candidates, each is scored on the same targets (those with a
    window of the longest), and the rest is chosen on the chosen window."""
    grid: dict[str, dict[str, Any]] = {}
    several = len(setup.windows) > 1
    for window, half_life, long_run, period in itertools.product(
        setup.windows, setup.half_lives, LONG_RUN, setup.periods
    ):
        key = f"w{window}-" * several + f"hl{half_life:g}-lr{long_run:g}-p{period}"
        trimmed = [c.with_window(window) for c in coins]
        scored = scored_folds(trimmed, half_life, long_run, period, folds=setup.fold_periods)
        folds = {name: scores["pooled"] for name, (_, scores) in scored.items()}
        grid[key] = {
            "window": window,
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
    coins = [c.with_window(chosen["window"]) for c in coins]
    volatility = (chosen["half_life"], chosen["long_run_weight"], chosen["period"])
    others = {}
    for point, p_up in [
        ("drift", "half"),
        ("reversal", "half"),
        ("naive", "ties"),
        ("naive", "fitted"),
    ]:
        folds = {}
        for name, (params, scored) in scored_folds(
            coins, *volatility, point, p_up, folds=setup.fold_periods
        ).items():
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
        for name, (_, scored) in scored_folds(
            coins, *volatility, point, p_up, weight, folds=setup.fold_periods
        ).items():
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
    fixed = {
        "volatility": best,
        "half_life": chosen["half_life"],
        "long_run_weight": chosen["long_run_weight"],
        "period": chosen["period"],
        "point": point,
        "p_up": p_up,
        "coin_weight": coin_weight,
    }
    if several:
        fixed["window"] = chosen["window"]
    return fixed, {"grid": grid, "point_and_p_up": others, "coin_weight": calibration}


def coverage_by_volatility(
    coins: list[Coin], fold_params: dict[str, DistributionParams]
) -> dict[str, list[list[float]]]:
    """80% coverage per tercile of forecast volatility (calm, middle, wild), per coin-fold,
    of the model and of the coin's constant band fitted on the same training data: an
    interval that is only right on average is wrong when it matters."""
    out: dict[str, list[list[float]]] = {"model": [[], [], []], "constant": [[], [], []]}
    for name in fold_params:
        test = FOLDS[name]
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


HORIZON_P_UP = ("same", "half", "fitted")


def horizon_folds(
    coins: list[Coin],
    choice: tuple[Any, ...],
    horizons: int,
    log: Any,
    folds: dict[str, tuple[float, float]] = FOLDS,
) -> dict[str, Any]:
    """The choices beyond one step, on the folds alone. Per fold, the selected one-step
    parameters are fitted on the fold's training data, then z_h's quantiles and P(up) on
    the same data; each candidate is scored on the fold's targets h candles ahead:

    - the weight of a coin's own h-step quantiles against the pooled ones (0, 1/2, 1), one
      for every h >= 2, ranked by the calibration error (mean over folds and horizons);
    - P(up) for h >= 2: the one-step model ("same"), 1/2, or refitted per horizon, ranked
      as for one step (coin-folds with Brier at or below the base rate, then mean Brier);
    - beside them, the one-step quantiles on the h-step sigma (the square-root-of-time rule
      with one-step tails), which the artifact does not use.

    Returns the records of every candidate per horizon and fold, and the choices."""
    steps = range(2, horizons + 1)
    weights: dict[float, dict[int, dict[str, Any]]] = {
        w: {h: {} for h in steps} for w in COIN_WEIGHTS
    }
    p_ups: dict[str, dict[int, dict[str, Any]]] = {p: {h: {} for h in steps} for p in HORIZON_P_UP}
    one_step: dict[int, dict[str, Any]] = {h: {} for h in steps}
    fold_params: dict[str, DistributionParams] = {}
    for name, test in folds.items():
        base = fit_params(coins, test[0], *choice)
        zs = {h: horizon_z(coins, base, test[0], h) for h in steps}
        for weight in COIN_WEIGHTS:
            params = fit_horizons(coins, base, test[0], horizons, weight, "same", zs)
            for h in steps:
                weights[weight][h][name] = _fold_record(
                    score_period(coins, params, test, test[0], h)
                )
        for p_up in HORIZON_P_UP[1:]:
            params = fit_horizons(coins, base, test[0], horizons, 0.0, p_up, zs)
            for h in steps:
                p_ups[p_up][h][name] = _fold_record(score_period(coins, params, test, test[0], h))
        quantiles = {c.symbol: base.quantiles_for([c.symbol])[0] for c in coins}
        for h in steps:
            p_ups["same"][h][name] = weights[0.0][h][name]
            scored = score_period(
                coins, fit_horizons(coins, base, test[0], h, zs=zs), test, test[0], h, quantiles
            )
            one_step[h][name] = _fold_record(scored)
        fold_params[name] = base
        log(f"  horizons, fold {name} scored")
    coin_weight = min(
        COIN_WEIGHTS,
        key=lambda w: np.mean([fold_mean(weights[w][h], "calibration_error") for h in steps]),
    )

    def brier_rank(p_up: str) -> tuple[int, float]:
        records = [f for h in steps for f in p_ups[p_up][h].values()]
        return (
            -sum(f["brier_wins"] for f in records),
            float(np.mean([f["brier"] for f in records])),
        )

    p_up = min(HORIZON_P_UP, key=brier_rank)
    # the chosen candidate's records: the weight's intervals with the chosen P(up)'s Brier
    chosen: dict[int, dict[str, Any]] = {}
    for h in steps:
        chosen[h] = {}
        for name in folds:
            record = dict(weights[coin_weight][h][name])
            for key in ("brier", "brier_base", "brier_wins", "brier_half"):
                record[key] = p_ups[p_up][h][name][key]
            chosen[h][name] = record
    log(f"horizons: coin quantile weight {coin_weight:g}, p_up {p_up}")
    return {
        "coin_weight": coin_weight,
        "p_up": p_up,
        "chosen": chosen,
        "weights": weights,
        "p_ups": p_ups,
        "one_step_quantiles": one_step,
        "fold_params": fold_params,
    }


def _fold_record(scored: dict[str, Any]) -> dict[str, Any]:
    half = sum(v["brier_half"] <= v["brier_base"] for v in scored["coins"].values())
    return scored["pooled"] | {"coins_off_by_2pp": _off_by_2pp(scored), "half_wins": half}


def _off_by_2pp(scored: dict[str, Any]) -> int:
    return sum(
        max(abs(v["cov80"] - 0.8), abs(v["cov95"] - 0.95)) > 0.02 for v in scored["coins"].values()
    )


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


def mae_ratio_test(
    errors: np.ndarray, naive: np.ndarray, seed: int, horizon: int = 1
) -> dict[str, Any]:
    """The MAE ratio's block-bootstrap interval and the Diebold-Mariano test against the
    no-change forecast's errors. Consecutive h-step forecasts share h - 1 steps of their
    targets, so their errors overlap: the blocks and the Newey-West lags are the one-step
    rules' plus h - 1 (blocks of at least h), and the statistic gets the HLN factor of h."""
    n, extra = len(errors), horizon - 1
    ci = block_bootstrap_mae_ratio(
        errors.tolist(), naive.tolist(), block=default_block(n) + extra, seed=seed
    )
    dm = diebold_mariano(
        errors.tolist(), naive.tolist(), lags=newey_west_lags(n) + extra, horizon=horizon
    )
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
    predicted: np.ndarray, actual: np.ndarray, last: np.ndarray, seed: int, horizon: int = 1
) -> dict[str, Any]:
    errors, naive = np.abs(predicted - actual), np.abs(last - actual)
    out: dict[str, Any] = {"n": len(actual)}
    out["mae_ratio"] = float(errors.sum() / naive.sum())
    out |= (
        NO_CHANGE_TEST
        if np.array_equal(errors, naive)
        else mae_ratio_test(errors, naive, seed, horizon)
    )
    return out | direction_scores(np.sign(actual - last), np.sign(predicted - last))


def pooled_point(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    seed: int,
    horizon: int = 1,
) -> dict[str, Any]:
    """Scale-free pooling: per target time, the sums over coins of |error| / last close."""
    times = np.concatenate([p[0] for p in parts])
    model = np.concatenate([np.abs(p[1] - p[2]) / p[3] for p in parts])
    naive = np.concatenate([np.abs(p[3] - p[2]) / p[3] for p in parts])
    order = np.unique(times, return_inverse=True)[1]
    m = np.bincount(order, weights=model)
    v = np.bincount(order, weights=naive)
    out: dict[str, Any] = {"n": len(times), "mae_ratio": float(m.sum() / v.sum())}
    out |= NO_CHANGE_TEST if np.array_equal(model, naive) else mae_ratio_test(m, v, seed, horizon)
    calls = np.concatenate([np.sign(p[1] - p[3]) for p in parts])
    moves = np.concatenate([np.sign(p[2] - p[3]) for p in parts])
    return out | direction_scores(moves, calls)


def final_test(
    coins: list[Coin],
    params: DistributionParams,
    data: Path,
    horizon: int = 1,
    with_lstm: bool = True,
) -> dict[str, Any]:
    """The final test year's scores of the targets ``horizon`` candles ahead that open in
    it; the old LSTM (a 4-hour, one-step model) only for one step with ``with_lstm``."""
    test = FINAL[1]
    results: dict[str, Any] = {"coins": {}, "pooled": {}}
    parts: dict[str, list[Any]] = {"model": [], "drift": [], "lstm": []}
    interval_rows = []
    for i, coin in enumerate(coins):
        a = ahead(coin, horizon)
        mask = a.valid & in_period(a.times, test)
        const = constant_width(coin, test[0], horizon)
        if mask.sum() < 200 or const is None:
            continue
        f = coin_forecasts(params, coin, mask, horizon)
        last, actual = coin.last[mask], a.actual[mask]
        # the evaluator's 12-candle drift, carried on for h candles
        drift = last + horizon * (last - coin.windows[mask][:, -12]) / 11
        lstm = None
        if with_lstm and horizon == 1:
            _register_lstm(coin, data / f"{coin.symbol}_4h.csv.gz")
            lstm = lstm_forecasts(coin, mask, LSTM)
        row: dict[str, Any] = {
            "model": point_metrics(f.point, actual, last, seed=i, horizon=horizon),
            "drift": point_metrics(drift, actual, last, seed=i, horizon=horizon),
        }
        parts["model"].append((a.times[mask], f.point, actual, last))
        parts["drift"].append((a.times[mask], drift, actual, last))
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
            "brier_base": brier_score(a.base_rate[mask].tolist(), up.tolist()),
            "brier_half": brier_score([0.5] * int(mask.sum()), up.tolist()),
            "up_share": float(up.mean()),
        }
        interval_rows.append((inside80, inside95, f, last, a.times[mask], up, a.base_rate[mask]))
        results["coins"][coin.symbol] = row
    for name, p in parts.items():
        if p:
            results["pooled"][name] = pooled_point(p, seed=99, horizon=horizon)
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
    times = np.concatenate([r[4] for r in interval_rows])
    n = len(inside80)
    results["pooled"]["intervals"] |= {
        "n": n,
        "cov80_ci": list(wilson_interval(int(inside80.sum()), n)),
        "cov95_ci": list(wilson_interval(int(inside95.sum()), n)),
        "cov80_block_ci": coverage_block_ci(times, inside80, horizon),
        "cov95_block_ci": coverage_block_ci(times, inside95, horizon),
    }
    return results


def coverage_block_ci(times: np.ndarray, inside: np.ndarray, horizon: int) -> list[float]:
    """A 95% interval for the pooled coverage that, unlike Wilson's, allows for misses that
    cluster in time and across coins: per target time, the closes inside over the closes
    forecast, resampled in moving blocks of target times as the MAE ratio is (the share
    inside is a ratio of sums, as the MAE ratio is)."""
    index = np.unique(times, return_inverse=True)[1]
    hits = np.bincount(index, weights=inside.astype(np.float64))
    count = np.bincount(index).astype(np.float64)
    ci = block_bootstrap_mae_ratio(
        hits.tolist(), count.tolist(), block=default_block(len(count)) + horizon - 1, seed=7
    )
    return [ci.lower, ci.upper]


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
    names = list(next(iter(selection["point_and_p_up"].values())))
    lines = [
        "| candidate | " + " | ".join(f"fold {k}" for k in names) + " |",
        "|---|" + "---:|" * len(names),
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
    names = list(next(iter(selection["coin_weight"].values())))
    lines = [
        "| weight of the coin's own quantiles | "
        + " | ".join(f"fold {k}" for k in names)
        + " | mean calibration error |",
        "|---|" + "---:|" * (len(names) + 1),
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


def plain_words(
    results: dict[str, Any],
    selection: dict[str, Any],
    chosen: dict[str, Any],
    setup: Setup = SETUPS["4h"],
) -> str:
    pooled = results["pooled"]
    model, lstm = pooled["model"], pooled.get("lstm")
    iv = pooled["intervals"]
    if chosen["point"] == "naive":
        ratios = {
            point: ", ".join(
                f"{k} {v['mae_ratio']:.4f}"
                for k, v in selection["point_and_p_up"][f"{point}/half"].items()
            )
            for point in ("drift", "reversal")
        }
        point_text = (
            f"no change: neither learned term was below naive's MAE on every fold (drift: "
            f"{ratios['drift']}; reversal: {ratios['reversal']})"
        )
    else:
        folds = selection["point_and_p_up"][f"{chosen['point']}/half"]
        fold_ratios = ", ".join(f"{k} {v['mae_ratio']:.4f}" for k, v in folds.items())
        term = "mean-reversion term on the last" if chosen["point"] == "reversal" else "drift on"
        point_text = (
            f"no change plus a halved {term} {setup.unit} return (it was below naive's MAE on "
            f"every fold: {fold_ratios})"
        )
    coins = results["coins"].values()
    over = {
        level: 100
        * float(
            np.mean(
                [
                    r["intervals"][f"width{level}"] / r["intervals"][f"same_cov_width{level}"] - 1
                    for r in coins
                ]
            )
        )
        for level in (80, 95)
    }
    over_train = sum(r["intervals"]["const_cov80"] > r["intervals"]["cov80"] for r in coins)
    brier_worse = sum(r["intervals"]["brier"] > r["intervals"]["brier_base"] for r in coins)
    text = [
        f"- The point forecast is {point_text}. On the final "
        f"year its pooled MAE ratio is {model['mae_ratio']:.4f} (95% CI "
        f"{_ci(model['mae_ratio_ci'])}, DM {model['dm']:+.2f}): "
        + _verdict(model["dm"])
        + '. Read the point forecast as "about the last close"; its direction is right '
        f"{_p(model['direction'], 1)} of the time.",
        f"- The intervals are the product: pooled coverage {_p(iv['cov80'], 1)} (80%) and "
        f"{_p(iv['cov95'], 1)} (95%), mean widths {_p(iv['width80'])} and {_p(iv['width95'])} "
        "of the price; they widen and narrow with volatility (at 80%, the constant band "
        f"fitted on training covered more closes than ours on {over_train} of {len(coins)} "
        "coins). "
        "Against a constant band with exactly the same coverage in the test year (an oracle "
        f"fitted on the test) ours are {over[80]:+.1f}% (80%) and {over[95]:+.1f}% (95%) "
        "wider on average over coins: volatility forecasts are noisy, and mean width "
        "rewards a band that is too narrow in wild weeks; the interval score (width plus "
        "penalties for misses), which the folds ranked on, favours the adaptive band by about "
        f"{(1 - selection['grid'][chosen['volatility']]['relative_interval_score']) * 100:.0f}%"
        " over the constant one.",
        f"- P(up) carries no usable information at {setup.interval}: its Brier score "
        f"{iv['brier']:.5f} against the base rate's {iv['brier_base']:.5f} and a flat 1/2's "
        f"{iv['brier_half']:.5f}, worse than the base rate on {brier_worse} of {len(coins)} "
        "coins.",
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


def _verdict(dm: float) -> str:
    if dm <= -1.96:
        return "significantly better than no change at 5%"
    if dm >= 1.96:
        return "significantly worse than no change at 5%"
    return "not significantly different from no change"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=BUNDLED_ARTIFACTS)
    parser.add_argument("--report", type=Path, default=None, help="default: by interval")
    parser.add_argument("--version", default=None)
    parser.add_argument("--interval", choices=sorted(SETUPS), default="4h")
    parser.add_argument("--horizons", type=int, default=1, help="largest horizon (candles)")
    parser.add_argument(
        "--base",
        default=None,
        help="name@version of a bundled artifact whose one-step parameters are kept",
    )
    args = parser.parse_args(argv)
    if args.horizons < 1:
        parser.error("--horizons must be at least 1")
    setup = SETUPS[args.interval]
    report = args.report or setup.report
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)

    coins = load_coins(args.data, max(setup.windows), setup.interval)
    log(f"{len(coins)} coins, {sum(len(c.actual) for c in coins):,} {setup.interval} windows")
    chosen, selection = select(coins, log, setup)
    coins = [c.with_window(chosen.get("window", setup.windows[0])) for c in coins]
    choice = (
        chosen["half_life"],
        chosen["long_run_weight"],
        chosen["period"],
        chosen["point"],
        chosen["p_up"],
        chosen["coin_weight"],
    )
    final_params = fit_params(coins, FINAL[1][0], *choice)
    base = None
    if args.base:
        final_params, base = keep_base(args.base, chosen, final_params)
        log(f"one-step parameters: {args.base}'s ({base['max_difference']:.1e} from the re-fit)")
    fitted_folds = {
        name: fit_params(coins, test[0], *choice) for name, test in setup.fold_periods.items()
    }
    fold_params = {name: params.to_json() for name, params in fitted_folds.items()}
    selection["terciles"] = coverage_by_volatility(coins, fitted_folds)
    horizons: dict[str, Any] | None = None
    if args.horizons > 1:
        horizons = horizon_folds(coins, choice, args.horizons, log, setup.fold_periods)
        final_params = fit_horizons(
            coins,
            final_params,
            FINAL[1][0],
            args.horizons,
            horizons["coin_weight"],
            horizons["p_up"],
        )
    # --- the one look at the final test, with everything above fixed
    results = final_test(coins, final_params, args.data, with_lstm=setup.interval == "4h")
    by_horizon = {1: results}
    for h in range(2, args.horizons + 1):
        by_horizon[h] = final_test(coins, final_params, args.data, h, with_lstm=False)
        log(f"final test scored, h = {h}")
    log("final test scored")
    first = min(float(c.times.min()) for c in coins)
    digest = hashlib.sha256(json.dumps(final_params.to_json(), sort_keys=True).encode())
    version = args.version or f"{datetime.now(UTC):%Y%m%d}-{digest.hexdigest()[:8]}"
    window = coins[0].window
    metadata: dict[str, Any] = {
        "name": setup.name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "kind": "distribution",
        "interval": setup.interval,
        "horizon": args.horizons,  # the largest: the model forecasts 1 .. horizon candles
        "horizons": args.horizons,
        "window": window,
        "features": ["close"],
        "data": {
            "folder": str(args.data.relative_to(REPO))
            if args.data.is_relative_to(REPO)
            else str(args.data),
            "candles": setup.interval
            if setup.interval == "4h"
            else "UTC days from the six 4h candles of each (days missing one left out)",
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
    if base:
        metadata["base"] = base
    if horizons:
        metadata["horizon_selection"] = {
            "coin_weight": horizons["coin_weight"],
            "p_up": horizons["p_up"],
        }
        metadata["horizon_fold_metrics"] = {str(h): v for h, v in horizons["chosen"].items()}
        metadata["horizon_test_metrics"] = {str(h): r for h, r in by_horizon.items() if h > 1}
    folder = args.out / setup.name / version
    save_distribution(folder, final_params, metadata)
    loaded = load_distribution(folder)  # round trip
    assert loaded.horizons == args.horizons
    log(f"artifact {folder}")
    ref = f"{setup.name}@{version}"
    write_report(report, chosen, selection, results, final_params, ref, setup)
    if horizons:
        with report.open("a") as out:
            out.write(horizon_report(setup, final_params, horizons, by_horizon, base))
    log(f"report {report}")
    print("\n".join(goals(results)))


def horizon_report(
    setup: Setup,
    params: DistributionParams,
    horizons: dict[str, Any],
    by_horizon: dict[int, dict[str, Any]],
    base: dict[str, Any] | None,
) -> str:
    """The section on forecasts 1 .. H candles ahead, appended to the report."""
    top = max(by_horizon)
    steps = range(2, top + 1)
    folds = list(horizons["chosen"][2])
    unit = setup.interval
    kept = (
        f"The one-step parameters are `{base['model']}`'s, kept as they are (its recorded "
        f"hash {base['params_sha256'][:8]}): the selection above, re-run, chose the same "
        f"candidate and re-fitted its parameters to within {base['max_difference']:.1e} "
        f"(relative; {base['values_equal']}: floating-point summation order). Only what "
        "follows is new.\n\n"
        if base
        else ""
    )
    lines = [
        "",
        f"## Forecasts h candles ahead (h = 1 .. {top}, {unit} candles)",
        "",
        kept + "log(close h ahead / last close) = mu_h + sigma_h z_h. sigma_h² is the one-step "
        "de-seasonalised variance (above) times the sum of the squared seasonal factors of "
        "the h target slots; mu_h = reversal × last return + h × drift × window mean return "
        "(the reversal acts on the first step only, a drift on every step); z_h's quantiles "
        "are fitted per horizon on the training period, because the tails thin out as "
        f"returns add up. Forecasts of h = 2 .. {top} reuse the one-step volatility, so "
        "serving any horizon costs what one step costs.",
        "",
        "Each fold fits the one-step parameters (the selection above) and then z_h's "
        "quantiles and P(up) on its training data only (windows whose h-step target opens "
        "before the fold), and is scored on the targets h candles ahead that open in the "
        "fold. Consecutive h-step forecasts overlap by h − 1 steps.",
        "",
        "### Choices on the folds",
        "",
        "Weight of each coin's own h-step quantiles against the pooled ones (one weight for "
        "every h ≥ 2), by calibration error (mean over coins of |cover 80 − 80| + |cover 95 "
        "− 95|, mean over folds); the one-step quantiles on the h-step sigma (the "
        "square-root-of-time rule with one-step tails) beside them:",
        "",
        "| h | " + " | ".join(f"weight {w:g}" for w in COIN_WEIGHTS) + " | one-step quantiles |",
        "|---:|" + "---:|" * (len(COIN_WEIGHTS) + 1),
    ]
    for h in steps:
        cells = [
            f"{fold_mean(horizons['weights'][w][h], 'calibration_error') * 100:.2f} pp"
            + (" **chosen**" if w == horizons["coin_weight"] else "")
            for w in COIN_WEIGHTS
        ]
        one = fold_mean(horizons["one_step_quantiles"][h], "calibration_error")
        lines.append(f"| {h} | " + " | ".join(cells) + f" | {one * 100:.2f} pp |")
    lines += [
        "",
        "P(up) beyond one step, ranked as for one step: coin-folds whose Brier score is at or "
        "below the base rate's (the running share of h-step ups in the coin's history), "
        "summed over h = 2 .. H, then mean Brier:",
        "",
        "| P(up) for h ≥ 2 | coin-folds ≤ base rate | mean Brier | mean Brier of the base rate |",
        "|---|---:|---:|---:|",
    ]
    for p_up in HORIZON_P_UP:
        records = [f for h in steps for f in horizons["p_ups"][p_up][h].values()]
        mark = " **chosen**" if p_up == horizons["p_up"] else ""
        label = {"same": "the one-step model", "half": "1/2", "fitted": "refitted per horizon"}
        lines.append(
            f"| {label[p_up]}{mark} | {sum(f['brier_wins'] for f in records)} of "
            f"{sum(f['coins'] for f in records)} | "
            f"{np.mean([f['brier'] for f in records]):.5f} | "
            f"{np.mean([f['brier_base'] for f in records]):.5f} |"
        )
    lines += [
        "",
        "The chosen model per horizon and fold: pooled coverage 80 / 95 (all coins' targets), "
        "coins off nominal by more than 2 points, interval score relative to the coin's "
        "constant h-step band from training (mean over coins), MAE ratio of mu_h against no "
        "change (pooled, scale-free):",
        "",
        "| h | " + " | ".join(f"fold {k}" for k in folds) + " | mean relative interval score |",
        "|---:|" + "---|" * len(folds) + "---:|",
    ]
    for h in steps:
        folds = horizons["chosen"][h]
        cells = [
            f"{_p(f['cov80_pooled'], 1)} / {_p(f['cov95_pooled'], 1)}, "
            f"{f['coins_off_by_2pp']}/{f['coins']} off, IS {f['relative_interval_score']:.3f}, "
            f"MAE {f['mae_ratio']:.5f}"
            for f in folds.values()
        ]
        lines.append(
            f"| {h} | "
            + " | ".join(cells)
            + f" | {fold_mean(folds, 'relative_interval_score'):.4f} |"
        )
    worse = [
        (h, name) for h in steps for name, f in horizons["chosen"][h].items() if f["mae_ratio"] >= 1
    ]
    lines += [
        "",
        "mu_h is the one-step point model carried to h steps, not a new choice: its MAE ratio "
        "is below 1 on "
        f"{len(steps) * len(folds) - len(worse)} of {len(steps) * len(folds)} horizon-folds"
        + (
            " (not on " + ", ".join(f"h = {h} in {name}" for h, name in worse) + ")"
            if worse
            else ""
        )
        + "; the term is a few hundredths of a percent of the price either way.",
        "",
        "Fitted on every target before 2024-10-24, the served quantiles of z_h (pooled; "
        f"{len(params.horizon_coin_quantiles.get(2, {}))} coins have their own blended ones):",
        "",
        "| h | 10% | 90% | 2.5% | 97.5% |",
        "|---:|---:|---:|---:|---:|",
        f"| 1 | {' | '.join(f'{q:+.3f}' for q in params.quantiles)} |",
    ]
    for h in steps:
        q = params.horizon_quantiles[h]
        lines.append(f"| {h} | {' | '.join(f'{v:+.3f}' for v in q)} |")
    lines += [
        "",
        "### Final test per horizon, 2024-10-24 .. 2025-10-23 (looked at once)",
        "",
        "Targets h candles ahead that open in the test year, all coins. Coverage with two 95% "
        "intervals: Wilson's, which treats every forecast as independent (too narrow: misses "
        "cluster in time and across coins, and h-step forecasts overlap), and a moving-block "
        "bootstrap over target times (blocks of n^(1/3) + h − 1 times). MAE ratio against no "
        "change, pooled scale-free, with its moving-block bootstrap interval (blocks of "
        "n^(1/3) + h − 1 target times) and the Diebold-Mariano statistic with Newey-West lags "
        "floor(4 (n/100)^(2/9)) + h − 1 and the Harvey-Leybourne-Newbold factor for h "
        "(`cryptocast_common.significance.diebold_mariano` takes both as arguments). Drift: "
        "the 12-candle mean change carried on for h candles.",
        "",
        "| h | n | cover 80 [Wilson] [block] | cover 95 [Wilson] [block] | width 80 / 95 "
        "| coins off > 2 pp | MAE ratio [95% CI] | DM | drift MAE ratio | Brier vs base rate |",
        "|---:|---:|---|---|---|---:|---|---:|---:|---|",
    ]
    for h, r in by_horizon.items():
        iv, m = r["pooled"]["intervals"], r["pooled"]["model"]
        off = sum(
            max(abs(c["intervals"]["cov80"] - 0.8), abs(c["intervals"]["cov95"] - 0.95)) > 0.02
            for c in r["coins"].values()
        )
        lines.append(
            f"| {h} | {iv['n']:,} | {_p(iv['cov80'], 1)} {_pci(iv['cov80_ci'])} "
            f"{_pci(iv['cov80_block_ci'])} | {_p(iv['cov95'], 1)} {_pci(iv['cov95_ci'])} "
            f"{_pci(iv['cov95_block_ci'])} | {_p(iv['width80'])} / {_p(iv['width95'])} | "
            f"{off}/{len(r['coins'])} | {m['mae_ratio']:.4f} {_ci(m['mae_ratio_ci'])} | "
            f"{m['dm']:+.2f} | {r['pooled']['drift']['mae_ratio']:.4f} | "
            f"{iv['brier']:.5f} vs {iv['brier_base']:.5f} |"
        )
    lines += [
        "",
        "Per coin, coverage 80 / 95 (%):",
        "",
        "| coin | " + " | ".join(f"h = {h}" for h in by_horizon) + " |",
        "|---|" + "---|" * len(by_horizon),
    ]
    for symbol in by_horizon[1]["coins"]:
        cells = [
            f"{r['coins'][symbol]['intervals']['cov80'] * 100:.1f} / "
            f"{r['coins'][symbol]['intervals']['cov95'] * 100:.1f}"
            if symbol in r["coins"]
            else "-"
            for r in by_horizon.values()
        ]
        lines.append(f"| {symbol} | " + " | ".join(cells) + " |")
    lines += ["", "### What the horizons say", "", horizon_words(by_horizon, unit), ""]
    return "\n".join(lines)


def _pci(pair: list[float]) -> str:
    return f"[{pair[0] * 100:.1f}, {pair[1] * 100:.1f}]"


def horizon_words(by_horizon: dict[int, dict[str, Any]], unit: str) -> str:
    """Plain statements computed from the final test's per-horizon figures."""
    out = []
    for level in (80, 95):
        nominal = level / 100
        outside = [
            h
            for h, r in by_horizon.items()
            if not r["pooled"]["intervals"][f"cov{level}_block_ci"][0]
            <= nominal
            <= r["pooled"]["intervals"][f"cov{level}_block_ci"][1]
        ]
        covers = ", ".join(
            f"{r['pooled']['intervals'][f'cov{level}'] * 100:.1f}" for r in by_horizon.values()
        )
        out.append(
            f"- {level}% band, pooled coverage by horizon: {covers}%. "
            + (
                f"Nominal {level}% lies outside the block-bootstrap interval at h = "
                + ", ".join(map(str, outside))
                + "."
                if outside
                else f"Nominal {level}% lies inside the block-bootstrap interval at every h."
            )
        )
    dms = {h: r["pooled"]["model"]["dm"] for h, r in by_horizon.items()}
    ratios = ", ".join(f"{r['pooled']['model']['mae_ratio']:.4f}" for r in by_horizon.values())
    significant = [h for h, d in dms.items() if abs(d) >= 1.96]
    out.append(
        f"- The point forecast's pooled MAE ratio by horizon: {ratios}; "
        + (
            "significantly different from no change at h = "
            + ", ".join(f"{h} (DM {dms[h]:+.2f})" for h in significant)
            if significant
            else "never significantly different from no change (|DM| < 1.96 at every h)"
        )
        + f". Beyond one {unit} candle the point is no change for practical purposes."
    )
    worse = [
        h
        for h, r in by_horizon.items()
        if r["pooled"]["intervals"]["brier"] > r["pooled"]["intervals"]["brier_base"]
    ]
    out.append(
        "- P(up): Brier above the base rate's at h = "
        + (", ".join(map(str, worse)) if worse else "none")
        + "; it has no usable direction at any horizon."
    )
    return "\n".join(out)


def keep_base(
    model: str, chosen: dict[str, Any], refit: DistributionParams
) -> tuple[DistributionParams, dict[str, Any]]:
    """The bundled artifact ``model``'s one-step parameters, if the selection just run chose
    its candidate and re-fitted its parameters up to floating-point rounding (a re-run on
    another machine differs in the last bits: NumPy's reductions and BLAS dot products sum
    in an order that depends on the CPU). Stops the script otherwise."""
    base = load_distribution(artifact_dir(BUNDLED_ARTIFACTS, model))
    if base.params.horizons > 1:
        raise SystemExit(f"{model} already forecasts {base.params.horizons} horizons")
    different = {
        key: (value, chosen.get(key))
        for key, value in base.metadata["selection"].items()
        if chosen.get(key) != value
    }
    if different:
        raise SystemExit(f"the selection differs from {model}'s: {different}")
    old, new = base.params.to_json(), refit.to_json()
    leaves_old, leaves_new = _leaves(old), _leaves(new)
    if leaves_old.keys() != leaves_new.keys():
        raise SystemExit(f"{model}'s parameters have other fields than the re-fit's")
    worst = max(
        abs(leaves_old[k] - leaves_new[k]) / max(abs(leaves_old[k]), 1e-300) for k in leaves_old
    )
    if worst > 1e-9:
        raise SystemExit(f"the re-fit differs from {model}'s parameters by {worst:.2e} (relative)")
    exact = sum(leaves_old[k] == leaves_new[k] for k in leaves_old)
    note = {
        "model": model,
        "params_sha256": base.metadata["params_sha256"],
        "one_step_params": "kept from the base; the re-fit on the folds' selection agreed",
        "max_difference": worst,
        "values_equal": f"{exact} of {len(leaves_old)} bit for bit",
    }
    return base.params, note


def _leaves(data: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON tree, by its path."""
    if isinstance(data, dict):
        return {
            k: v
            for key, value in data.items()
            for k, v in _leaves(value, f"{prefix}/{key}").items()
        }
    if isinstance(data, list | tuple):
        return {
            k: v for i, value in enumerate(data) for k, v in _leaves(value, f"{prefix}/{i}").items()
        }
    return {prefix: float(data)}


def write_report(
    path: Path,
    chosen: dict[str, Any],
    selection: dict[str, Any],
    results: dict[str, Any],
    params: DistributionParams,
    ref: str,
    setup: Setup = SETUPS["4h"],
) -> None:
    daily = setup.interval == "1d"
    source = (
        "daily candles built from the bundled Binance 4-hour set (a UTC day's candle from its\n"
        "six 4-hour candles: open of the first, highest high, lowest low, close of the last,\n"
        "summed volume; days missing any of the six are left out)"
        if daily
        else "the bundled Binance\n4-hour set"
    )
    command = f"python -m cryptocast_trainer.select_distribution --interval {setup.interval}"
    window_note = (
        f"\nThe window (closes per forecast) was chosen on the folds among "
        f"{', '.join(map(str, setup.windows))} days, every candidate scored on the same "
        f"targets (those with {max(setup.windows)} days before them): it is "
        f"**{params.window}**.\n"
        if daily
        else ""
    )
    fold_text = (
        "2021, 2022, 2023 and 2024-01-01 .. 2024-10-23"
        if "2021" in setup.folds
        else "2022, 2023 and 2024-01-01 .. 2024-10-23"
    )
    fold_note = (
        ""
        if "2021" in setup.folds
        else " There is no 2021 fold: an exchange outage drops a whole day now and then, a "
        "window may not span the gap, and after the last such day (2020-02-18) no coin has "
        "the 500 daily training targets before 2021 that the reference band needs."
    )
    text = f"""# Choosing the distribution forecaster (`{ref}`)

Written by `{command}` from {source}
(`services/ingestor/cryptocast_ingestor/data/binance_4h/`, 20 coins, 2017 ..
2025-10-23). Rolling-origin folds test on {fold_text},
each fitted on every candle before its test period; all choices below were fixed on the
folds.{fold_note}
The final test year 2024-10-24 .. 2025-10-23 (18 coins: MATIC and XMR were delisted
before it) was then scored once.

## The model

log(next close / last close) = mu + sigma * z. sigma is an exponentially weighted volatility
of the last {params.window - 1} log returns (half-life {params.half_life:g} candles, blended with
the window's plain mean of squares at weight {params.long_run_weight:g}), with the
{"none" if len(params.seasonal) == 1 else f"{len(params.seasonal)}-slot"} seasonal pattern of
{setup.unit} volatility removed from the window and applied to the target slot. z's quantiles at
10/90/2.5/97.5% were fitted on the training period, pooled over coins:
{", ".join(f"{q:+.3f}" for q in params.quantiles)} (a normal would give ±1.282, ±1.960);
{len(params.coin_quantiles)} coins have quantiles of their own, weight
{chosen["coin_weight"]:g} on their own and the rest pooled.
Point forecast: **{chosen["point"]}** (mu = {params.drift_coef:g} × window mean return
{params.reversal_coef:+g} × last return). P(up): **{chosen["p_up"]}**
(intercept {params.p_up_intercept:.4f}, slope on the window's share of unchanged closes
{params.p_up_tie_slope:+.4f}).
{window_note}
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

{plain_words(results, selection, chosen, setup)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()
