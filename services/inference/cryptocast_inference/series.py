"""OHLCV CSV files as arrays, with the checks the trainer and the evaluator rely on."""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cryptocast_common.events import Candle, interval_delta
from cryptocast_common.prices import value_problem
from cryptocast_common.timestamps import parse_time

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
TIME_COLUMNS = ("timestamp", "open_time")  # the candle's open time, as exchanges report it


class SeriesError(ValueError):
    """The file cannot be evaluated or trained on; the message says why and where."""


@dataclass(frozen=True)
class Series:
    symbol: str
    times: np.ndarray  # candle open times, unix seconds, strictly increasing
    ohlcv: np.ndarray  # (n, 5) float64

    def __len__(self) -> int:
        return len(self.times)

    def segments(self, interval: str) -> list[Series]:
        """Maximal runs of consecutive candles: windows must not span a gap."""
        step = interval_delta(interval).total_seconds()
        breaks = np.flatnonzero(np.diff(self.times) != step) + 1
        return [
            Series(self.symbol, times, ohlcv)
            for times, ohlcv in zip(
                np.split(self.times, breaks), np.split(self.ohlcv, breaks), strict=True
            )
        ]


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_series(path: Path, symbol: str, min_rows: int = 2) -> Series:
    """Read and check a CSV with columns timestamp,open,high,low,close,volume (others ignored)."""
    if not path.is_file():
        raise SeriesError(f"{path}: no such file")
    with _open(path) as file:
        reader = csv.DictReader(file)
        header = [name.strip().lower() for name in reader.fieldnames or []]
        reader.fieldnames = header
        time_column = next((c for c in TIME_COLUMNS if c in header), None)
        missing = [c for c in PRICE_COLUMNS if c not in header]
        if time_column is None or missing:
            needed = ([] if time_column else ["timestamp"]) + missing
            raise SeriesError(
                f"{path}: missing column(s) {', '.join(needed)}; "
                f"found {', '.join(header) or 'nothing'}"
            )
        times, rows = [], []
        for line, record in enumerate(reader, start=2):
            try:
                times.append(parse_time(record[time_column] or ""))
                values = [float(record[c] or "nan") for c in PRICE_COLUMNS]
            except ValueError as error:
                raise SeriesError(f"{path}:{line}: unreadable value ({error})") from None
            bad = [c for c, v in zip(PRICE_COLUMNS, values, strict=True) if not math.isfinite(v)]
            if bad:
                raise SeriesError(f"{path}:{line}: {', '.join(bad)} is empty or not a number")
            problem = value_problem(*values)
            if problem:
                raise SeriesError(
                    f"{path}:{line}: {problem} (prices must be positive and volume >= 0)"
                )
            rows.append(values)
    if len(rows) < min_rows:
        raise SeriesError(f"{path}: {len(rows)} rows; at least {min_rows} are needed")
    stamps = np.asarray(times)
    steps = np.diff(stamps)
    if (steps == 0).any():
        line = int(np.flatnonzero(steps == 0)[0]) + 3
        raise SeriesError(f"{path}:{line}: duplicate timestamp")
    if (steps < 0).any():
        line = int(np.flatnonzero(steps < 0)[0]) + 3
        raise SeriesError(f"{path}:{line}: timestamps are not in ascending order")
    return Series(symbol, stamps, np.asarray(rows, dtype=np.float64))


def read_candles(path: Path, symbol: str, interval: str) -> list[Candle]:
    """``read_series`` as the candle events the services exchange, checked on the way."""
    series = read_series(path, symbol)
    step = interval_delta(interval)
    spacing = float(np.median(np.diff(series.times))) if len(series) > 1 else 0.0
    if spacing != step.total_seconds():
        raise SeriesError(f"{path}: candles are {spacing / 3600:g}h apart, not {interval}")
    candles = []
    for line, (opened, (o, h, low, c, v)) in enumerate(
        zip(series.times, series.ohlcv, strict=True), start=2
    ):
        start = datetime.fromtimestamp(float(opened), UTC)
        try:
            candles.append(
                Candle(
                    symbol=symbol,
                    interval=interval,
                    open_time=start,
                    close_time=start + step,
                    open=o,
                    high=h,
                    low=low,
                    close=c,
                    volume=v,
                    source=path.name,
                )
            )
        except ValueError as error:
            raise SeriesError(f"{path}:{line}: {str(error).splitlines()[-1].strip()}") from None
    return candles
