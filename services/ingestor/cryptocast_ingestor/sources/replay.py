"""Replay of bundled history on one timeline shared by every symbol."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptocast_common.events import Candle
from cryptocast_ingestor.datasets import read_bundle


def load_timeline(folder: Path, symbols: Sequence[str], interval: str) -> list[list[Candle]]:
    """Candles of every symbol grouped by open time, over the window all symbols cover.

    Restricting to the common window makes the demo's prices one moment of the market.
    """
    series = {}
    for symbol in symbols:
        path = folder / f"{symbol}_{interval}.csv.gz"
        if not path.exists():
            raise FileNotFoundError(f"no replay data for {symbol} {interval}: {path} is missing")
        series[symbol] = read_bundle(path, symbol, interval, source=f"replay:{folder.name}")
        if not series[symbol]:
            raise ValueError(f"{path} holds no candles")
    start = max(candles[0].open_time for candles in series.values())
    end = min(candles[-1].open_time for candles in series.values())
    steps: dict[datetime, list[Candle]] = defaultdict(list)
    for symbol in symbols:
        for candle in series[symbol]:
            if start <= candle.open_time <= end:
                steps[candle.open_time].append(candle)
    return [steps[t] for t in sorted(steps)]
