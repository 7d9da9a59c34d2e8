"""One training run of the distribution model: read candles, refit, validate walk-forward,
register the version, announce it as a challenger, apply retention.

The selection (volatility half-life, long-run weight, seasonal period, point and P(up)
models, weight of each coin's own quantiles) is the base model's, chosen offline by
``select_distribution`` on rolling-origin folds; a run refits the parameters it implies
(seasonal factors, z quantiles, coefficients) on the newest candles. The version's
parameters are fitted on every candle before a cutoff and scored once on the candles after
it (the newest ``validation_candles`` per coin), so the metrics in the registry are
out-of-sample for exactly the parameters registered.

Nothing is visible before the registry's metadata document is written, which is the last
storage step: a run that fails or is cancelled before it registers nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.registry import ModelRegistry, ModelVersion
from cryptocast_inference.distribution import (
    MODEL_FILE,
    DistributionParams,
    load_distribution,
    save_distribution,
)
from cryptocast_trainer.announce import announce_version
from cryptocast_trainer.select_distribution import (
    SLOT_SECONDS,
    WINDOW,
    Coin,
    coin_forecasts,
    fit_params,
    make_coin,
    point_metrics,
    pooled_point,
)
from cryptocast_trainer.sources import CandleSeries, CandleSource

log = logging.getLogger(__name__)

# The shipped model's selection, used when the base model is not in the registry.
DEFAULT_SELECTION: dict[str, Any] = {
    "half_life": 6.0,
    "long_run_weight": 0.25,
    "period": 42,
    "point": "reversal",
    "p_up": "fitted",
    "coin_weight": 0.5,
}


class TrainingError(RuntimeError):
    """The run cannot produce a version (too little data, a source down, ...)."""


@dataclass(frozen=True)
class RunMetrics:
    started: Counter
    succeeded: Counter
    failed: Counter
    last_success: Gauge
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> RunMetrics:
        """Prometheus metrics in ``registry`` (the process's default one if None)."""
        kwargs: dict[str, Any] = {} if registry is None else {"registry": registry}
        return cls(
            Counter("cryptocast_trainer_runs_started", "Training runs started", **kwargs),
            Counter(
                "cryptocast_trainer_runs_succeeded",
                "Training runs that registered a version",
                **kwargs,
            ),
            Counter(
                "cryptocast_trainer_runs_failed",
                "Training runs that failed or were cancelled",
                **kwargs,
            ),
            Gauge(
                "cryptocast_trainer_last_success_timestamp_seconds",
                "Unix time the last successful run ended",
                **kwargs,
            ),
            Histogram(
                "cryptocast_trainer_run_duration_seconds",
                "Wall time of a training run, any outcome",
                buckets=(1, 5, 15, 60, 300, 900, 3600),
                **kwargs,
            ),
        )


@dataclass
class TrainerDeps:
    source: CandleSource
    registry: ModelRegistry
    bus: Bus
    symbols: Sequence[str]
    interval: str
    model_name: str
    base_model: str
    history_candles: int
    validation_candles: int
    keep_last: int
    protected: set[str]
    metrics: RunMetrics
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Trained:
    """A fitted version, not yet registered."""

    version: str
    files: dict[str, bytes]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class RunResult:
    version: ModelVersion
    announced: list[Event]
    removed: list[str]


async def run_training(deps: TrainerDeps) -> RunResult:
    """One run, measured; raises (and registers nothing) if any step before registering
    fails or the run is cancelled."""
    deps.metrics.started.inc()
    began = time.perf_counter()
    try:
        result = await _run(deps)
    except BaseException as error:
        deps.metrics.failed.inc()
        log.error(
            "training run failed",
            extra={"error": repr(error), "seconds": round(time.perf_counter() - began, 1)},
        )
        raise
    finally:
        deps.metrics.duration.observe(time.perf_counter() - began)
    deps.metrics.succeeded.inc()
    deps.metrics.last_success.set(time.time())
    return result


async def _run(deps: TrainerDeps) -> RunResult:
    began = time.perf_counter()

    def progress(step: str, **extra: Any) -> None:
        log.info(
            f"training: {step}", extra={"seconds": round(time.perf_counter() - began, 1), **extra}
        )

    progress("reading candles", source=deps.source.name, symbols=list(deps.symbols))
    series = [
        await deps.source.series(symbol, deps.interval, deps.history_candles)
        for symbol in deps.symbols
    ]
    progress("candles read", candles={s.symbol: len(s) for s in series})
    selection = await base_selection(deps.registry, deps.base_model)
    trained = await asyncio.to_thread(
        train_distribution,
        series,
        selection,
        deps.model_name,
        deps.interval,
        deps.validation_candles,
        deps.clock(),
        {"source": deps.source.name, "base_model": deps.base_model},
    )
    pooled = trained.metadata["test_metrics"]["pooled"]
    progress(
        "fitted and validated",
        model=f"{deps.model_name}@{trained.version}",
        mae_ratio=round(pooled["model"]["mae_ratio"], 5),
        dm=round(pooled["model"]["dm"], 2),
        cov80=round(pooled["intervals"]["cov80"], 3),
        cov95=round(pooled["intervals"]["cov95"], 3),
    )
    version = await deps.registry.register(
        deps.model_name,
        trained.version,
        trained.files,
        {
            "created_at": trained.metadata["created_at"],
            "data": trained.metadata["data"],
            "metrics": trained.metadata["test_metrics"],
            "status": "challenger",
            "kind": "distribution",
            "interval": deps.interval,
            "window": WINDOW,
            "trained_by": "cryptocast-trainer",
        },
    )
    progress("registered", model=version.ref)
    announced = await announce_version(deps.bus, trained.files, deps.symbols, deps.interval)
    progress("announced as challenger", events=len(announced))
    removed = await deps.registry.retain(deps.keep_last, deps.protected | {version.ref})
    await deps.registry.cleanup()
    if removed:
        progress("retention", removed=removed)
    return RunResult(version, announced, removed)


async def base_selection(registry: ModelRegistry, base_model: str) -> dict[str, Any]:
    """The base model's selection, from its registered ``model.json``; the shipped model's
    if it is not registered."""
    try:
        _, files = await registry.get(base_model)
        selection: dict[str, Any] = json.loads(files[MODEL_FILE])["selection"]
    except (LookupError, KeyError, ValueError):
        log.warning("base model %s not in the registry: the shipped selection is used", base_model)
        return dict(DEFAULT_SELECTION)
    return selection


def train_distribution(
    series: Sequence[CandleSeries],
    selection: dict[str, Any],
    name: str,
    interval: str,
    validation_candles: int,
    now: datetime,
    provenance: dict[str, Any],
) -> Trained:
    """Fit on candles before the cutoff, score after it; CPU-bound (run it in a thread)."""
    if interval != "4h":
        raise TrainingError(f"the distribution model is fitted on 4h candles, not {interval}")
    coins = [make_coin(s.symbol, s.times, s.closes) for s in series if len(s) > WINDOW]
    coins = [c for c in coins if len(c.actual)]
    if not coins:
        raise TrainingError(f"no symbol has {WINDOW + 1} contiguous candles to train on")
    newest = max(float(c.times.max()) for c in coins)
    cutoff = newest - (validation_candles - 1) * SLOT_SECONDS
    trainable = [c for c in coins if (c.times < cutoff).sum() >= validation_candles]
    if not trainable:
        raise TrainingError(
            f"no symbol has {validation_candles} training targets before the cutoff "
            f"{_iso(cutoff)}: too few candles (more history, or fewer validation candles)"
        )
    period = int(selection["period"])
    if period > 1 and not any((c.all_times < cutoff).sum() >= 50 * period for c in trainable):
        raise TrainingError(
            f"a seasonal period of {period} candles needs {50 * period} training candles of "
            f"one symbol before the cutoff {_iso(cutoff)}: too few candles"
        )
    params = fit_params(
        trainable,
        cutoff,
        float(selection["half_life"]),
        float(selection["long_run_weight"]),
        period,
        str(selection["point"]),
        str(selection["p_up"]),
        float(selection["coin_weight"]),
    )
    results = validate(coins, params, cutoff)
    digest = hashlib.sha256(json.dumps(params.to_json(), sort_keys=True).encode()).hexdigest()
    version = f"{now:%Y%m%dT%H%M%S}-{digest[:8]}"
    first = min(float(c.times.min()) for c in trainable)
    metadata: dict[str, Any] = {
        "name": name,
        "version": version,
        "created_at": now.isoformat(),
        "kind": "distribution",
        "interval": interval,
        "horizon": 1,
        "window": WINDOW,
        "features": ["close"],
        "data": provenance
        | {
            "coins": [c.symbol for c in trainable],
            "training_range": {"first": _iso(first), "last_target_before": _iso(cutoff)},
            "validation": [_iso(cutoff), _iso(newest + SLOT_SECONDS)],
            "candles": {s.symbol: len(s) for s in series},
        },
        "selection": selection,
        "test_metrics": results,
    }
    with tempfile.TemporaryDirectory(prefix="cryptocast-trainer-") as scratch:
        path = save_distribution(Path(scratch), params, metadata)
        load_distribution(path)  # the file round-trips before it is registered
        body = path.read_bytes()
    return Trained(version, {MODEL_FILE: body}, metadata)


def validate(coins: Sequence[Coin], params: DistributionParams, cutoff: float) -> dict[str, Any]:
    """Walk-forward scores after the cutoff, per coin and pooled: the point forecast's MAE
    relative to no change (bootstrap interval, Diebold-Mariano), direction, and how often
    the 80% and 95% intervals held the close."""
    results: dict[str, Any] = {"coins": {}, "pooled": {}}
    parts = []
    inside80: list[np.ndarray] = []
    inside95: list[np.ndarray] = []
    for i, coin in enumerate(coins):
        mask = coin.times >= cutoff
        if not mask.any():
            continue
        f = coin_forecasts(params, coin, mask)
        last, actual = coin.last[mask], coin.actual[mask]
        in80 = (actual >= f.lower_80) & (actual <= f.upper_80)
        in95 = (actual >= f.lower_95) & (actual <= f.upper_95)
        inside80.append(in80)
        inside95.append(in95)
        parts.append((coin.times[mask], f.point, actual, last))
        results["coins"][coin.symbol] = {
            "model": point_metrics(f.point, actual, last, seed=i),
            "intervals": {
                "n": int(mask.sum()),
                "cov80": float(in80.mean()),
                "cov95": float(in95.mean()),
                "width80": float(np.mean((f.upper_80 - f.lower_80) / last)),
                "width95": float(np.mean((f.upper_95 - f.lower_95) / last)),
            },
        }
    if not parts:
        raise TrainingError(f"no candles after the cutoff {_iso(cutoff)} to validate on")
    results["pooled"]["model"] = pooled_point(parts, seed=99)
    results["pooled"]["intervals"] = {
        "n": int(sum(len(x) for x in inside80)),
        "cov80": float(np.concatenate(inside80).mean()),
        "cov95": float(np.concatenate(inside95).mean()),
    }
    plain: dict[str, Any] = _plain(results)
    return plain


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers, so the metrics serialise to JSON and BSON alike."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()
