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


def compute_features(ohlcv: np.ndarray) -> np.ndarray:
    """Features for candles WARMUP .. T-1: shape (..., T - WARMUP, len(FEATURES)).

    Rolling sums come from differences of running sums: a handful of NumPy calls whatever
    the window, which is what makes a single-window call cheap.
    """
    ohlcv = np.asarray(ohlcv, dtype=np.float64)
    logs = np.log(ohlcv[..., :4])
    log_close = logs[..., CLOSE]
    returns = np.diff(log_close, axis=-1, prepend=log_close[..., :1])  # candle t's; [0] is 0
    running = np.cumsum(
        np.stack(
            [
                np.maximum(returns, 0),
                np.maximum(-returns, 0),
                returns,
                returns * returns,
                ohlcv[..., CLOSE],
            ]
        ),
        axis=-1,
    )

    def last(size: int) -> np.ndarray:
        """Sums over the ``size`` candles ending at each candle from WARMUP on."""
        return running[..., WARMUP:] - running[..., WARMUP - size : -size]

    (gains, losses, *_), (_, _, sum12, squares12, closes12) = last(14), last(12)
    moved = gains + losses
    rsi = np.divide(gains, moved, out=np.full_like(moved, 0.5), where=moved > 0) - 0.5
    mean12 = sum12 / 12
    volume_change = np.diff(np.log(ohlcv[..., VOLUME] + _TINY), axis=-1)[..., WARMUP - 1 :]
    t = slice(WARMUP, None)  # candles that have a full look-back
    return np.stack(
        [
            returns[..., t],
            (logs[..., HIGH] - logs[..., LOW])[..., t],
            (log_close - logs[..., OPEN])[..., t],
            np.clip(volume_change, -_VOLUME_CLIP, _VOLUME_CLIP),
            rsi,
            log_close[..., t] - np.log(closes12 / 12),
            np.sqrt(np.maximum(squares12 / 12 - mean12 * mean12, 0)),
        ],
        axis=-1,
    )


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
        return cls(tuple(map(float, q50)), tuple(map(float, scale)), clip, float(np.std(targets)))

    def transform(self, features: np.ndarray) -> np.ndarray:
        scaled = (features - np.asarray(self.center)) / np.asarray(self.scale)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "features": FEATURES,
                    "center": self.center,
                    "scale": self.scale,
                    "clip": self.clip,
                    "target_scale": self.target_scale,
                },
                indent=2,
            )
            + "\n"
        )

    @classmethod
    def load(cls, path: Path) -> FeatureScaler:
        data = json.loads(path.read_text())
        return cls(tuple(data["center"]), tuple(data["scale"]), data["clip"], data["target_scale"])
