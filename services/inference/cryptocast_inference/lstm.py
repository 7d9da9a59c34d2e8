"""The LSTM model (the previous shipped model) and its artifact.

Its folder ``<artifacts>/<name>/<version>/`` holds ``model.keras`` (the trained Keras model),
``network.npz`` (its weights for the NumPy forward pass), ``scaler.json``, ``metadata.json``,
and the training and evaluation reports. Serving reads only the NumPy weights, the scaler
and the metadata, and checks them against the hashes the trainer recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from cryptocast_common.events import Candle, ForecastScore, ModelCard, ModelRef, ModelSkill
from cryptocast_inference.artifacts import ArtifactError, sha256_of
from cryptocast_inference.features import (
    CLOSE,
    FEATURES,
    WARMUP,
    FeatureScaler,
    compute_features,
)
from cryptocast_inference.network import NumpyNetwork

SERVED_FILES = ("network.npz", "scaler.json")


@dataclass(frozen=True)
class Forecaster:
    scaler: FeatureScaler
    network: NumpyNetwork

    def log_returns(self, inputs: np.ndarray) -> np.ndarray:
        """Unscaled feature windows (n, window, features) → predicted next log returns (n,)."""
        return self.network(self.scaler.transform(inputs)) * self.scaler.target_scale

    def closes(self, inputs: np.ndarray, previous: np.ndarray) -> np.ndarray:
        return previous * np.exp(self.log_returns(inputs))


@dataclass(frozen=True)
class Artifact:
    path: Path
    metadata: dict[str, Any]
    forecaster: Forecaster

    @property
    def model(self) -> ModelRef:
        return ModelRef(name=self.metadata["name"], version=self.metadata["version"])

    @property
    def window(self) -> int:
        return int(self.metadata["window"])

    @property
    def skill(self) -> ModelSkill:
        test = self.metadata["metrics"]["test"]["model"]
        return ModelSkill(
            mase=test["mase"],
            directional_accuracy=test["directional_accuracy"],
            beats_naive=self.metadata["beats_naive"],
        )

    def cards(self, symbols: Sequence[str], interval: str) -> list[ModelCard]:
        """What this model is and how it did, for each symbol it serves."""
        metadata = self.metadata
        scores = {
            name: ForecastScore(
                **{k: v for k, v in metrics.items() if k in ForecastScore.model_fields}
            )
            for name, metrics in metadata["metrics"]["test"].items()
        }
        return [
            ModelCard(
                symbol=symbol,
                interval=interval,
                model=self.model,
                trained_at=metadata["created_at"],
                features=metadata["features"],
                window=self.window,
                horizon=metadata["horizon"],
                trained_from=metadata["data"]["range"]["first"],
                trained_to=metadata["data"]["range"]["last"],
                evaluation=scores,
                beats_naive=metadata["beats_naive"],
            )
            for symbol in symbols
        ]

    def check_fits(self, window: int, interval: str) -> None:
        """Refuse an artifact whose inputs differ from what this service would feed it."""
        expected = {
            "features": list(FEATURES),
            "warmup": WARMUP,
            "window": window,
            "interval": interval,
        }
        wrong = [
            f"{key}: artifact has {self.metadata.get(key)!r}, service uses {value!r}"
            for key, value in expected.items()
            if self.metadata.get(key) != value
        ]
        if wrong:
            raise ArtifactError(
                f"model artifact {self.path} does not fit this service: " + "; ".join(wrong)
            )


def load_artifact(path: Path) -> Artifact:
    metadata_file = path / "metadata.json"
    if not metadata_file.is_file():
        available = sorted(
            f"{p.parent.name}@{p.name}"
            for p in path.parent.parent.glob("*/*")
            if (p / "metadata.json").is_file()
        )
        raise ArtifactError(
            f"no model artifact at {path}; available: {', '.join(available) or 'none'}"
        )
    metadata = json.loads(metadata_file.read_text())
    for name in SERVED_FILES:
        if sha256_of(path / name) != metadata["files"][name]:
            raise ArtifactError(f"{path / name} does not match the hash in metadata.json")
    forecaster = Forecaster(
        FeatureScaler.load(path / "scaler.json"), NumpyNetwork.load(path / "network.npz")
    )
    return Artifact(path, metadata, forecaster)


_OHLCV = attrgetter("open", "high", "low", "close", "volume")


def candles_to_array(windows: Sequence[Sequence[Candle]]) -> np.ndarray:
    """(windows, candles, 5); windows must be of equal length."""
    values = chain.from_iterable(map(_OHLCV, chain.from_iterable(windows)))
    count = 5 * sum(map(len, windows))
    return np.fromiter(values, dtype=np.float64, count=count).reshape(len(windows), -1, 5)


class LstmPredictor:
    """Serves an artifact: one vectorised forward pass for all windows of a batch."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.model = artifact.model
        self.skill: ModelSkill | None = artifact.skill
        self.window = artifact.window + WARMUP
        self.interval: str | None = artifact.metadata["interval"]
        self.horizons = 1

    def predict(self, windows: Sequence[Sequence[Candle]], horizon: int = 1) -> list[float]:
        if horizon != 1:
            raise ValueError(f"{self.model} forecasts one candle ahead, not {horizon}")
        ohlcv = candles_to_array(windows)
        closes = self.artifact.forecaster.closes(compute_features(ohlcv), ohlcv[:, -1, CLOSE])
        return closes.tolist()

    def cards(self, symbols: Sequence[str], interval: str) -> list[ModelCard]:
        return self.artifact.cards(symbols, interval)
