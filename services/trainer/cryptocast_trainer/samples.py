"""Series cut into one-step forecasting samples: feature windows and the close that followed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cryptocast_inference.features import CLOSE, FEATURES, WARMUP, compute_features
from cryptocast_inference.series import Series


@dataclass(frozen=True)
class Samples:
    inputs: np.ndarray  # (n, window, features), unscaled
    closes: np.ndarray  # (n, window): the window's closes, for the baselines
    actual: np.ndarray  # (n,): the close of the candle after the window
    target_times: np.ndarray  # (n,): that candle's open time, unix seconds

    def __len__(self) -> int:
        return len(self.actual)

    @property
    def previous(self) -> np.ndarray:
        return self.closes[:, -1]

    @property
    def target_log_returns(self) -> np.ndarray:
        return np.log(self.actual / self.previous)

    def select(self, mask: np.ndarray) -> Samples:
        return Samples(
            self.inputs[mask], self.closes[mask], self.actual[mask], self.target_times[mask]
        )

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        return Samples(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("inputs", "closes", "actual", "target_times")
            )
        )


def candles_needed(window: int) -> int:
    return window + WARMUP


def make_samples(series: Series, window: int, interval: str) -> Samples:
    """Every window of consecutive candles that has a next candle, never across a gap."""
    parts = []
    for segment in series.segments(interval):
        if len(segment) < candles_needed(window) + 1:
            continue
        features = compute_features(segment.ohlcv[:-1])  # the last candle is only a target
        inputs = sliding_window_view(features, window, axis=0).transpose(0, 2, 1)
        last = np.arange(len(inputs)) + candles_needed(window) - 1  # each window's last candle
        closes = segment.ohlcv[:, CLOSE]
        parts.append(
            Samples(
                inputs=np.ascontiguousarray(inputs),
                closes=sliding_window_view(closes[:-1], window)[-len(inputs) :].copy(),
                actual=closes[last + 1],
                target_times=segment.times[last + 1],
            )
        )
    if not parts:
        return Samples(
            np.empty((0, window, len(FEATURES))), np.empty((0, window)), np.empty(0), np.empty(0)
        )
    return Samples.concat(parts)
