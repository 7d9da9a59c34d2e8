"""Serving cost of the distribution forecaster: one symbol and 100 symbols per call.

.venv/bin/python bench/distribution.py [name@version]   (make bench runs it)
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from cryptocast_common.events import Candle
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS
from cryptocast_inference.distribution import load_distribution


def _windows(symbols: int, size: int) -> list[list[Candle]]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(hours=4)
    out = []
    for s in range(symbols):
        closes = [100 * (1 + 0.002 * ((i * 7 + s) % 11 - 5)) for i in range(size)]
        out.append(
            [
                Candle(
                    symbol=f"C{s}",
                    interval="4h",
                    open_time=start + i * step,
                    close_time=start + (i + 1) * step,
                    open=c,
                    high=c,
                    low=c,
                    close=c,
                    volume=1.0,
                    source="bench",
                )
                for i, c in enumerate(closes)
            ]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args:
        name, _, version = args[0].partition("@")
        folder = BUNDLED_ARTIFACTS / name / version
    else:
        folder = sorted((BUNDLED_ARTIFACTS / "dist-4h").iterdir())[-1]
    forecaster = load_distribution(folder)
    for symbols, repeats in ((1, 2000), (100, 300)):
        windows = _windows(symbols, forecaster.window)
        forecaster.predict_distribution(windows)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            forecaster.predict_distribution(windows)
            timings.append(time.perf_counter() - started)
        timings.sort()
        print(
            f"{folder.parent.name}@{folder.name}, {symbols} symbol(s) x {forecaster.window} "
            f"candles: median {timings[len(timings) // 2] * 1e3:.3f} ms, "
            f"p90 {timings[int(len(timings) * 0.9)] * 1e3:.3f} ms per call"
        )


if __name__ == "__main__":
    main()
