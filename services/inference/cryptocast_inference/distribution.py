"""Probabilistic forecasts h candles ahead: a point, central 80% and 95% intervals, P(up).

The model, in log-return space, for the close ``h`` candles after a window of closed candles
(``h = 1``: the next candle; an artifact forecasts ``h = 1 .. horizons``):

    log(close h ahead / last close) = mu_h + sigma_h * z_h

- ``mu_h`` is the point forecast's log return. It is 0 (no change) unless a drift or
  mean-reversion term survived every fold of the rolling-origin evaluation; the fitted
  coefficients say which: ``h * drift_coef`` times the window's mean log return (a drift
  goes on every step) plus ``reversal_coef`` times the last log return (a reversal of the
  last move acts on the next step only: the steps after it would reverse a reversal of a
  few hundredths of a percent, ``reversal_coef ** 2`` of the move, which is left out).
- ``sigma_h`` is the volatility expected for the h-step return. The window's squared log
  returns, each divided by its slot's squared seasonal factor (``seasonal``: one factor
  per slot of the artifact's interval - 4 hours, a day - over a period of
  ``len(seasonal)`` candles counted from the Unix epoch: 42 is the week of 4-hour candles,
  7 the day of the week of daily ones; one factor means no pattern), give a de-seasonalised
  one-step variance: their exponentially weighted mean (half-life ``half_life`` candles)
  blended with their plain mean (weight ``long_run_weight``, a GARCH-like pull toward the
  longer level). The h-step variance is that variance times the sum, over the h target
  slots, of each one's squared factor (one-step returns taken as uncorrelated, the
  volatility as flat over the h steps; what that misses is in ``z_h``'s quantiles). For
  ``h = 1`` this is the one-step volatility times the target slot's factor. A coin's own
  returns set its scale, so PAXG's moves, a tenth of the others', get a tenth of the width.
- ``z_h`` is a standardized return whose quantiles were fitted on the training period only:
  empirical quantiles keep the fat tails that a normal factor would miss, and they are
  fitted per horizon because the tails thin out as returns add up. For ``h = 1``,
  ``quantiles`` are pooled over coins and ``coin_quantiles`` holds, for each coin with
  enough training history, its own quantiles blended with the pooled ones (tail shapes
  differ: PAXG's are not DOGE's); a coin the model has not seen gets the pooled ones. For
  ``h >= 2``, ``horizon_quantiles[h]`` are pooled over coins and
  ``horizon_coin_quantiles[h]`` holds the coins' blended ones where the folds chose them.
- ``p_up`` = P(close h ahead > last close) = ``p_up_intercept + p_up_tie_slope * share of
  unchanged closes in the window``: ties are not ups, which matters for coins quoted to
  few significant digits. A horizon in ``horizon_p_up`` has an (intercept, slope) of its
  own; the others use the one-step pair. It carries no usable direction.

Serving is NumPy only: a few vector operations on a (windows, candles) array of closes,
O(windows x candles) for any horizon; a horizon adds one table look-up (the summed
seasonal factors per first target slot, computed once per artifact) and costs the same.
The fitted parameters live in ``model.json`` in an artifact folder
``models/<name>/<version>/`` next to the metadata that says how they were chosen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from cryptocast_common.events import (
    Candle,
    ForecastScore,
    ModelCard,
    ModelRef,
    ModelSkill,
    interval_delta,
)
from cryptocast_inference.artifacts import ArtifactError

SLOT_SECONDS = 4 * 3600  # one slot per 4-hour candle: artifacts that record no interval
LEVELS = (0.10, 0.90, 0.025, 0.975)  # lower 80, upper 80, lower 95, upper 95
MODEL_FILE = "model.json"


@dataclass(frozen=True)
class Forecast:
    """One forecast of the close ``horizon`` candles ahead (the next one for 1); prices in
    the quote currency, ``p_up`` in [0, 1]."""

    point: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float
    p_up: float


@dataclass(frozen=True)
class DistributionParams:
    window: int  # closes per forecast, oldest first, the last one just closed
    half_life: float  # candles, of the exponentially weighted volatility
    long_run_weight: float  # weight of the window's equal-weighted mean of squares
    seasonal: tuple[float, ...]  # volatility factor per slot of the interval (mean square 1)
    quantiles: tuple[float, float, float, float]  # of z (one step) at LEVELS, pooled
    drift_coef: float = 0.0
    reversal_coef: float = 0.0
    p_up_intercept: float = 0.5
    p_up_tie_slope: float = 0.0
    sigma_floor: float = 1e-5  # a flat window still gets a (tiny) interval
    coin_quantiles: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    # of z_h at LEVELS for h = 2 .. horizons, pooled over coins; none: one step only
    horizon_quantiles: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    # per horizon h >= 2, coins' own quantiles of z_h blended with the pooled ones
    horizon_coin_quantiles: dict[int, dict[str, tuple[float, float, float, float]]] = field(
        default_factory=dict
    )
    # per horizon h >= 2, P(up)'s (intercept, tie slope) where it is not the one-step pair
    horizon_p_up: dict[int, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        horizons = sorted(self.horizon_quantiles)
        if horizons != list(range(2, len(horizons) + 2)):
            raise ValueError(f"horizon_quantiles must cover horizons 2 .. H, got {horizons}")
        for name in ("horizon_coin_quantiles", "horizon_p_up"):
            extra = set(getattr(self, name)) - set(horizons)
            if extra:
                raise ValueError(f"{name} has horizons without quantiles: {sorted(extra)}")

    @property
    def horizons(self) -> int:
        """The largest horizon with quantiles: 1 when there are no horizon quantiles."""
        return len(self.horizon_quantiles) + 1

    def weights(self) -> np.ndarray:
        """Weights of the window's W - 1 squared returns, oldest first, summing to 1."""
        count = self.window - 1
        decay = 0.5 ** (1 / self.half_life)
        ewma = decay ** np.arange(count - 1, -1, -1, dtype=np.float64)
        ewma /= ewma.sum()
        return (1 - self.long_run_weight) * ewma + self.long_run_weight / count

    def to_json(self) -> dict[str, Any]:
        """The parameters; no ``coin_quantiles`` or ``horizon_*`` key when there are none,
        so that artifacts from before them keep their recorded hash. Horizons are string
        keys, as JSON has them."""
        data = asdict(self)
        if not data["coin_quantiles"]:
            del data["coin_quantiles"]
        for name in ("horizon_quantiles", "horizon_coin_quantiles", "horizon_p_up"):
            by_horizon = getattr(self, name)
            if by_horizon:
                data[name] = {str(h): data[name][h] for h in sorted(by_horizon)}
            else:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DistributionParams:
        data = dict(data)
        data["seasonal"] = tuple(data["seasonal"])
        data["quantiles"] = tuple(data["quantiles"])
        data["coin_quantiles"] = {
            coin: tuple(q) for coin, q in data.get("coin_quantiles", {}).items()
        }
        data["horizon_quantiles"] = {
            int(h): tuple(q) for h, q in data.get("horizon_quantiles", {}).items()
        }
        data["horizon_coin_quantiles"] = {
            int(h): {coin: tuple(q) for coin, q in coins.items()}
            for h, coins in data.get("horizon_coin_quantiles", {}).items()
        }
        data["horizon_p_up"] = {int(h): tuple(ab) for h, ab in data.get("horizon_p_up", {}).items()}
        return cls(**data)

    def quantiles_for(self, symbols: Sequence[str]) -> np.ndarray:
        """(n, 4) quantiles of z for windows of these coins."""
        pooled = self.quantiles
        return np.array(
            [self.coin_quantiles.get(symbol, pooled) for symbol in symbols], dtype=np.float64
        )

    def quantiles_at(self, horizon: int, symbols: Sequence[str]) -> np.ndarray:
        """(n, 4) quantiles of z_h for windows of these coins: a coin's own (blended) where
        it has them, else the pooled ones of that horizon."""
        if horizon == 1:
            return self.quantiles_for(symbols)
        pooled = self.horizon_quantiles[horizon]
        own = self.horizon_coin_quantiles.get(horizon, {})
        return np.array([own.get(symbol, pooled) for symbol in symbols], dtype=np.float64)

    def p_up_at(self, horizon: int) -> tuple[float, float]:
        """P(up)'s intercept and tie slope for this horizon."""
        if horizon == 1 or horizon not in self.horizon_p_up:
            return self.p_up_intercept, self.p_up_tie_slope
        return self.horizon_p_up[horizon]


@dataclass(frozen=True)
class ForecastArrays:
    point: np.ndarray
    lower_80: np.ndarray
    upper_80: np.ndarray
    lower_95: np.ndarray
    upper_95: np.ndarray
    p_up: np.ndarray
    sigma: np.ndarray  # of the h-step log return, seasonal factors included
    mu: np.ndarray


@dataclass(frozen=True)
class _Prepared:
    """What the parameters imply, computed once: the weights per target slot."""

    weights: np.ndarray  # (slots, W - 1): window weights / squared seasonal factor of each
    target_scale: np.ndarray  # (slots,): the target slot's factor
    # (horizons - 1, slots): for h = 2 .. horizons, per first target slot s, the root of the
    # sum of the squared factors of slots s .. s + h - 1
    horizon_scale: np.ndarray


def _prepare(params: DistributionParams) -> _Prepared:
    seasonal = np.asarray(params.seasonal, dtype=np.float64)
    period = len(seasonal)
    base = params.weights()
    count = len(base)
    # Return i of the window (0 = oldest) is that of candle i + 1, which opens
    # count - i slots before the target candle.
    offsets = count - np.arange(count)
    slots = (np.arange(period)[:, None] - offsets[None, :]) % period
    ahead = (np.arange(period)[:, None] + np.arange(params.horizons)[None, :]) % period
    summed = np.cumsum(seasonal[ahead] ** 2, axis=1)  # (slots, horizons): h = 1 .. H
    return _Prepared(
        base[None, :] / seasonal[slots] ** 2, seasonal.copy(), np.sqrt(summed[:, 1:].T)
    )


def forecast_arrays(
    params: DistributionParams,
    closes: np.ndarray,
    target_slots: np.ndarray,
    quantiles: np.ndarray | None = None,
    prepared: _Prepared | None = None,
    horizon: int = 1,
) -> ForecastArrays:
    """Forecasts of the close ``horizon`` candles after (n, W) windows of closes whose next
    candles fall in ``target_slots``, with z_h's ``quantiles``: (n, 4) per window or (4,)
    for all; the pooled ones of that horizon if None.

    The same code serves live windows and scores millions of historical ones."""
    prepared = prepared or _prepare(params)
    closes = np.asarray(closes, dtype=np.float64)
    last = closes[:, -1]
    returns = np.diff(np.log(closes), axis=1)
    slots = np.asarray(target_slots, dtype=np.int64) % len(params.seasonal)
    weights = prepared.weights[slots]
    variance = np.einsum("ij,ij->i", returns * returns, weights)
    if horizon == 1:
        scale = prepared.target_scale[slots]
        default_quantiles = params.quantiles
    else:
        scale = prepared.horizon_scale[horizon - 2][slots]
        default_quantiles = params.horizon_quantiles[horizon]
    sigma = np.maximum(np.sqrt(variance), params.sigma_floor) * scale
    mu = np.zeros(len(last))
    if params.drift_coef:
        mu = mu + (params.drift_coef * horizon) * returns.mean(axis=1)
    if params.reversal_coef:
        mu = mu + params.reversal_coef * returns[:, -1]
    q = np.asarray(default_quantiles if quantiles is None else quantiles, dtype=np.float64)
    bounds = last[:, None] * np.exp(mu[:, None] + sigma[:, None] * q)
    ties = (returns == 0).mean(axis=1)
    intercept, tie_slope = params.p_up_at(horizon)
    p_up = np.clip(intercept + tie_slope * ties, 0.0, 1.0)
    return ForecastArrays(
        last * np.exp(mu), bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3], p_up, sigma, mu
    )


def target_slot(candle: Candle, slot_seconds: int = SLOT_SECONDS) -> int:
    """Slot of the candle after ``candle`` (it opens when ``candle`` closes), counted in
    candles of ``slot_seconds`` from the Unix epoch."""
    return int(candle.close_time.timestamp()) // slot_seconds


def slot_seconds(interval: str | None) -> int:
    """A slot's length for candles of ``interval``; 4 hours when none is recorded (the
    artifacts from before intervals other than 4h). Raises ValueError for a bad interval."""
    if interval is None:
        return SLOT_SECONDS
    return int(interval_delta(interval).total_seconds())


_CLOSE = attrgetter("close")


@dataclass
class DistributionForecaster:
    """Serves fitted parameters: one vectorised call for all windows of a batch."""

    params: DistributionParams
    model: ModelRef
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._prepared = _prepare(self.params)
        self.window = self.params.window
        self.horizons: int = self.params.horizons
        self.interval: str | None = self.metadata.get("interval")
        try:
            self.slot_seconds = slot_seconds(self.metadata.get("interval"))
        except ValueError as error:
            raise DistributionArtifactError(f"model {self.model}: {error}") from None

    @property
    def skill(self) -> ModelSkill:
        """Its final-test record, pooled over coins: beats naive only if significantly."""
        test = self.metadata["test_metrics"]["pooled"]["model"]
        return ModelSkill(
            mase=test["mae_ratio"],
            directional_accuracy=test["direction"],
            beats_naive=test["dm"] < -1.96,
        )

    def cards(self, symbols: Sequence[str], interval: str) -> list[ModelCard]:
        """What this model is and how it did on the final test year, per symbol: the coin's
        own record where it was tested, else the pooled one. ``beats_naive`` is the pooled
        verdict, as in ``skill``: tested on 18 coins, a few per-coin "wins" at 5% are what
        chance alone hands out."""
        tested = self.metadata["test_metrics"]
        data = self.metadata["data"]
        cards = []
        for symbol in symbols:
            record = tested["coins"].get(symbol, tested["pooled"])
            evaluation = {
                name: _score(record[name]) for name in ("model", "drift", "lstm") if name in record
            }
            evaluation["naive"] = ForecastScore(
                n=record["model"]["n"],
                mae=None,
                rmse=None,
                mape=None,
                mase=1.0,
                directional_accuracy=None,
                direction_ties=record["model"]["n"],
                within_2pct=None,
            )
            cards.append(
                ModelCard(
                    symbol=symbol,
                    interval=interval,
                    model=self.model,
                    trained_at=self.metadata["created_at"],
                    features=self.metadata["features"],
                    window=self.window,
                    horizon=self.metadata["horizon"],
                    trained_from=data["training_range"]["first"],
                    trained_to=data["training_range"]["last_target_before"],
                    evaluation=evaluation,
                    beats_naive=self.skill.beats_naive,
                )
            )
        return cards

    def check_fits(self, window: int | None, interval: str) -> None:
        """Refuse to serve candles of another interval, or windows of another length."""
        wrong = []
        if self.metadata.get("interval") != interval:
            wrong.append(
                f"interval: fitted on {self.metadata.get('interval')!r}, service uses {interval!r}"
            )
        if window is not None and window != self.window:
            wrong.append(
                f"window: fitted on {self.window}, CRYPTOCAST_INFERENCE_WINDOW is {window}"
            )
        if wrong:
            raise ArtifactError(
                f"model {self.model} does not fit this service: " + "; ".join(wrong)
            )

    def predict_distribution(
        self, windows: Sequence[Sequence[Candle]], horizon: int = 1
    ) -> list[Forecast]:
        """The forecast of the close ``horizon`` candles after each window's last candle;
        ValueError for a horizon outside 1 .. ``horizons`` or a window too short."""
        if not 1 <= horizon <= self.horizons:
            raise ValueError(
                f"model {self.model} forecasts horizons 1 .. {self.horizons}, not {horizon}"
            )
        if not windows:
            return []
        size = self.window
        if any(len(w) < size for w in windows):
            raise ValueError(f"every window needs {size} candles")
        closes = np.fromiter(
            map(_CLOSE, chain.from_iterable(w[-size:] for w in windows)),
            dtype=np.float64,
            count=size * len(windows),
        ).reshape(-1, size)
        seconds = self.slot_seconds
        slots = np.fromiter(
            (target_slot(w[-1], seconds) for w in windows), dtype=np.int64, count=len(windows)
        )
        quantiles = self.params.quantiles_at(horizon, [w[-1].symbol for w in windows])
        f = forecast_arrays(self.params, closes, slots, quantiles, self._prepared, horizon)
        return [
            Forecast(*row)
            for row in zip(
                f.point.tolist(),
                f.lower_80.tolist(),
                f.upper_80.tolist(),
                f.lower_95.tolist(),
                f.upper_95.tolist(),
                f.p_up.tolist(),
                strict=True,
            )
        ]

    def predict(self, windows: Sequence[Sequence[Candle]], horizon: int = 1) -> list[float]:
        """The point forecasts alone, for the existing ``Predictor`` protocol."""
        return [forecast.point for forecast in self.predict_distribution(windows, horizon)]


def save_distribution(folder: Path, params: DistributionParams, metadata: dict[str, Any]) -> Path:
    """Write ``model.json`` (parameters and metadata); its hash is recorded inside."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(params.to_json(), sort_keys=True).encode()).hexdigest()
    body = metadata | {"params": params.to_json(), "params_sha256": digest}
    path = folder / MODEL_FILE
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def _score(record: dict[str, Any]) -> ForecastScore:
    """A final-test record as a card's score: the MAE ratio is the card's MASE."""
    return ForecastScore(
        n=record["n"],
        mae=None,
        rmse=None,
        mape=None,
        mase=record["mae_ratio"],
        directional_accuracy=record["direction"],
        direction_ties=record["direction_ties"],
        within_2pct=None,
    )


class DistributionArtifactError(ArtifactError):
    """The folder holds no distribution model, or a damaged one."""


def is_distribution(path: Path) -> bool:
    return (path / MODEL_FILE).is_file()


def load_distribution(path: Path) -> DistributionForecaster:
    """Load ``<artifacts>/<name>/<version>/`` (or its ``model.json``) for serving."""
    file = path if path.suffix == ".json" else path / MODEL_FILE
    if not file.is_file():
        raise DistributionArtifactError(f"no distribution model at {file}")
    body = json.loads(file.read_text())
    params = DistributionParams.from_json(body["params"])
    digest = hashlib.sha256(json.dumps(params.to_json(), sort_keys=True).encode()).hexdigest()
    if body.get("params_sha256") != digest:
        raise DistributionArtifactError(f"{file}: parameters do not match their recorded hash")
    return DistributionForecaster(
        params, ModelRef(name=body["name"], version=body["version"]), body
    )
