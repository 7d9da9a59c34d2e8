"""Scale-free features of OHLCV candles, the same code for training and serving.

Every function takes an array shaped ``(..., T, 5)`` with columns open, high, low, close,
volume, oldest candle first, so one call serves a single series or a batch of windows.
The feature of candle ``t`` depends on candles ``t - WARMUP .. t`` only, never on later ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEATURES = (
    "log_return",  # log(close / previous close)
    "log_range",  # log(high / low)
    "log_body",  # log(close / open)
    "volume_change",  # log(volume / previous volume), clipped: zero volumes happen
    "rsi_14",  # relative strength over 14 candles, simple averages, centred on 0
    "sma_gap_12",  # log(close / 12-candle simple moving average of closes)
    "volatility_12",  # standard deviation of the last 12 log returns
)
WARMUP = 14  # older candles a feature looks back on (rsi_14 needs 14 returns)
_VOLUME_CLIP = 4.0
_TINY = 1e-12
OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)


def _rolling(x: np.ndarray, size: int) -> np.ndarray:
    """Windows of the last ``size`` values along the last axis: shape (..., T - size + 1, size)."""
    return sliding_window_view(x, size, axis=-1)


def compute_features(ohlcv: np.ndarray) -> np.ndarray:
    """Features for candles WARMUP .. T-1: shape (..., T - WARMUP, len(FEATURES))."""
    ohlcv = np.asarray(ohlcv, dtype=np.float64)
    log_close = np.log(ohlcv[..., CLOSE])
    returns = np.diff(log_close, axis=-1)  # returns[..., t - 1] belongs to candle t
    volume = ohlcv[..., VOLUME] + _TINY
    volume_change = np.clip(np.diff(np.log(volume), axis=-1), -_VOLUME_CLIP, _VOLUME_CLIP)

    gains, losses = _rolling(np.maximum(returns, 0), 14).mean(-1), \
        _rolling(np.maximum(-returns, 0), 14).mean(-1)
    moved = gains + losses
    rsi = np.divide(gains, moved, out=np.full_like(moved, 0.5), where=moved > 0) - 0.5
    sma_gap = log_close[..., 11:] - np.log(_rolling(ohlcv[..., CLOSE], 12).mean(-1))
    volatility = _rolling(returns, 12).std(-1)

    t = slice(WARMUP, None)  # candles that have a full look-back
    columns = [
        returns[..., WARMUP - 1:],
        np.log(ohlcv[..., HIGH] / ohlcv[..., LOW])[..., t],
        (log_close - np.log(ohlcv[..., OPEN]))[..., t],
        volume_change[..., WARMUP - 1:],
        rsi,
        sma_gap[..., WARMUP - 11:],
        volatility[..., WARMUP - 12:],
    ]
    return np.stack(columns, axis=-1)


@dataclass(frozen=True)
class FeatureScaler:
    """Robust scaling fit on the training split only: (x - median) / IQR, clipped.

    Log returns are fat-tailed; a min-max scaler lets one crash set the range and squeezes
    every ordinary candle into a sliver of it. Median and interquartile range ignore the
    tails, and the clip keeps a crash from saturating the LSTM's gates.
    """

    center: tuple[float, ...]
    scale: tuple[float, ...]
    clip: float
    target_scale: float  # the model predicts next log return / target_scale

    @classmethod
    def fit(cls, rows: np.ndarray, targets: np.ndarray, clip: float = 5.0) -> FeatureScaler:
        q25, q50, q75 = np.percentile(rows, [25, 50, 75], axis=0)
        scale = np.where(q75 - q25 > 0, q75 - q25, 1.0)
        return cls(tuple(map(float, q50)), tuple(map(float, scale)), clip,
                   float(np.std(targets)))

    def transform(self, features: np.ndarray) -> np.ndarray:
        scaled = (features - np.asarray(self.center)) / np.asarray(self.scale)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"features": FEATURES, "center": self.center,
                                    "scale": self.scale, "clip": self.clip,
                                    "target_scale": self.target_scale}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> FeatureScaler:
        data = json.loads(path.read_text())
        return cls(tuple(data["center"]), tuple(data["scale"]), data["clip"],
                   data["target_scale"])
