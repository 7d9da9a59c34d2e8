"""Loaders for the raw market data in ``shared/data`` and the project's cleaned bundles.

The raw files have quirks (see shared/data/README.md); every loader returns the bars it kept
and a ``CleaningReport`` that says what it merged and dropped and why. Bundles are gzipped
CSV files ``<SYMBOL>_<interval>.csv.gz`` with columns ``open_time,open,high,low,close,volume``
(open_time ISO 8601 UTC), written byte-for-byte reproducibly.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import statistics
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptocast_common.events import floor_to_interval, interval_delta, iso_utc
from cryptocast_common.prices import ohlcv_problem
from cryptocast_common.timestamps import is_milliseconds, unix_seconds

BUNDLE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
# A bar any of whose prices is this far from the median close around it is a bad print.
OUTLIER_RATIO = 0.5
OUTLIER_NEIGHBOURS = 12


@dataclass(frozen=True, slots=True)
class Bar:
    open_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class CleaningReport:
    name: str
    read: int = 0
    kept: int = 0
    merged_duplicates: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    zero_volume: int = 0
    gaps: int = 0
    longest_gap: timedelta = timedelta(0)
    first: datetime | None = None
    last: datetime | None = None
    # Set by loaders that keep violent moves: the largest |log(close / previous close)|
    # between consecutive bars, and the open time of the bar that made it.
    largest_move: float | None = None
    largest_move_at: datetime | None = None

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "none"
        span = f"{iso_utc(self.first)} .. {iso_utc(self.last)}" if self.first and self.last else "-"
        move = (
            f"; largest move kept: |log return| {self.largest_move:.3f} at "
            f"{iso_utc(self.largest_move_at)}"
            if self.largest_move is not None and self.largest_move_at
            else ""
        )
        return (
            f"{self.name}: read {self.read}, kept {self.kept} ({span}), merged "
            f"{self.merged_duplicates} duplicates, dropped: {dropped}; {self.zero_volume} "
            f"zero-volume bars kept; {self.gaps} gaps (longest {self.longest_gap}){move}"
        )


def consistency_problem(bar: Bar) -> str | None:
    return ohlcv_problem(bar.open, bar.high, bar.low, bar.close, bar.volume)


def _drop_outliers(bars: list[Bar], report: CleaningReport) -> list[Bar]:
    closes = [b.close for b in bars]
    kept = []
    for i, bar in enumerate(bars):
        lo, hi = max(0, i - OUTLIER_NEIGHBOURS), i + OUTLIER_NEIGHBOURS + 1
        reference = statistics.median(closes[lo:i] + closes[i + 1 : hi] or [bar.close])
        worst = max(abs(p / reference - 1) for p in (bar.open, bar.high, bar.low, bar.close))
        if worst > OUTLIER_RATIO:
            report.dropped["outlier prices (>50% off the local median)"] += 1
        else:
            kept.append(bar)
    return kept


def _finish(
    bars: Iterable[Bar], step: timedelta, report: CleaningReport, drop_outliers: bool = True
) -> list[Bar]:
    """Validate, sort, drop outliers and record gaps; the common tail of every loader.

    Run again on resampled bars, it describes the result at the new interval."""
    valid = []
    for bar in bars:
        problem = consistency_problem(bar)
        if problem:
            report.dropped[problem] += 1
        else:
            valid.append(bar)
    result = sorted(valid, key=lambda b: b.open_time)
    if drop_outliers:
        result = _drop_outliers(result, report)
    report.gaps, report.longest_gap = 0, timedelta(0)
    for prev, cur in itertools.pairwise(result):
        if cur.open_time - prev.open_time > step:
            report.gaps += 1
            report.longest_gap = max(report.longest_gap, cur.open_time - prev.open_time - step)
    report.kept = len(result)
    report.zero_volume = sum(1 for b in result if b.volume == 0)
    if result:
        report.first, report.last = result[0].open_time, result[-1].open_time
    return result


def load_binance_hourly(path: Path) -> tuple[list[Bar], CleaningReport]:
    """CryptoDataDownload's Binance export: newest first, two timestamp formats, an overlap."""
    report = CleaningReport(path.name)
    by_time: dict[datetime, tuple[bool, Bar]] = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        volume_col = next(
            i
            for i, name in enumerate(header)
            if name.startswith("Volume ") and not name.endswith("USDT")
        )
        for row in reader:
            report.read += 1
            try:
                unix = float(row[0])
                in_millis = is_milliseconds(unix)  # the newer export; the older is in seconds
                opened = datetime.fromtimestamp(unix_seconds(unix), UTC)
                bar = Bar(
                    opened,
                    float(row[3]),
                    float(row[4]),
                    float(row[5]),
                    float(row[6]),
                    float(row[volume_col]),
                )
            except (ValueError, IndexError):
                report.dropped["unparseable row"] += 1
                continue
            if opened in by_time:
                report.merged_duplicates += 1
                if by_time[opened][0] or not in_millis:
                    continue  # keep the millisecond-format row, the newer export
            by_time[opened] = (in_millis, bar)
    bars = _finish((bar for _, bar in by_time.values()), timedelta(hours=1), report)
    return bars, report


def load_binance_4h(path: Path) -> tuple[list[Bar], CleaningReport]:
    """Binance 4-hour klines: ``timestamp`` (open time, UTC, no zone marker), OHLCV, oldest first.

    The set was checked against an independent download, so no local-median outlier filter
    runs here: DOGE's +0.83 log return in January 2021 is a real move and must stay for the
    volatility model to learn from. Rows are still validated (positive prices, high/low
    bracketing open/close, one row per open time on the 4-hour grid); gaps from exchange
    outages stay gaps (nothing is filled in) and zero-volume bars are kept; the report counts
    both and names the largest move kept.
    """
    report = CleaningReport(path.name)
    step = timedelta(hours=4)
    by_time: dict[datetime, Bar] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            report.read += 1
            try:
                opened = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
                bar = Bar(
                    opened, *(float(row[c]) for c in ("open", "high", "low", "close", "volume"))
                )
            except (ValueError, KeyError, TypeError):
                report.dropped["unparseable row"] += 1
                continue
            if floor_to_interval(opened, "4h") != opened:
                report.dropped["open time off the 4-hour grid"] += 1
                continue
            if opened in by_time:
                report.merged_duplicates += 1  # the first row for an open time wins
                continue
            by_time[opened] = bar
    bars = _finish(by_time.values(), step, report, drop_outliers=False)
    for prev, cur in itertools.pairwise(bars):
        move = abs(math.log(cur.close / prev.close))
        if cur.open_time - prev.open_time == step and (
            report.largest_move is None or move > report.largest_move
        ):
            report.largest_move, report.largest_move_at = move, cur.open_time
    return bars, report


def load_coingecko(path: Path) -> tuple[list[Bar], CleaningReport]:
    """The original backend's merge of /ohlc (4h candles) and /market_chart (24h volume).

    ``ts`` is the candle's close time. The free API has no per-candle volume; the bar's
    volume is the 24-hour rolling volume at the close divided by six (one 4-hour share).
    """
    report = CleaningReport(path.name)
    bars = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            report.read += 1
            try:
                closed = datetime.fromisoformat(row["ts"]).replace(tzinfo=UTC)
                bars.append(
                    Bar(
                        closed - timedelta(hours=4),
                        float(row["open"]),
                        float(row["high"]),
                        float(row["low"]),
                        float(row["close_candle"]),
                        float(row["volume"]) / 6,
                    )
                )
            except (ValueError, KeyError):
                report.dropped["unparseable row"] += 1
    return _finish(bars, timedelta(hours=4), report), report


def resample(
    bars: Sequence[Bar], interval: str, report: CleaningReport, source_interval: str = "1h"
) -> list[Bar]:
    """Aggregate ``source_interval`` bars into aligned ``interval`` bars, keeping only complete
    ones."""
    step = interval_delta(interval)
    needed = step // interval_delta(source_interval)
    buckets: dict[datetime, list[Bar]] = {}
    for bar in bars:
        buckets.setdefault(floor_to_interval(bar.open_time, interval), []).append(bar)
    out = []
    for start, group in sorted(buckets.items()):
        if len(group) != needed:
            report.dropped[f"incomplete {interval} bucket (missing hours)"] += 1
            continue
        out.append(
            Bar(
                start,
                group[0].open,
                max(b.high for b in group),
                min(b.low for b in group),
                group[-1].close,
                sum(b.volume for b in group),
            )
        )
    return _finish(out, step, report)


def write_bundle(bars: Sequence[Bar], path: Path) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(BUNDLE_COLUMNS)
    for bar in bars:
        writer.writerow(
            [
                iso_utc(bar.open_time),
                repr(bar.open),
                repr(bar.high),
                repr(bar.low),
                repr(bar.close),
                repr(bar.volume),
            ]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(text.getvalue().encode())


def bundle_span(path: Path) -> tuple[datetime, datetime] | None:
    """The first and last open times in a bundle (its rows are oldest first); None if it holds
    no bars."""
    first = last = None
    with gzip.open(path, "rt", newline="") as handle:
        for line in itertools.islice(handle, 1, None):
            first = first or line
            last = line
    if first is None or last is None:
        return None
    return datetime.fromisoformat(first.split(",", 1)[0]), datetime.fromisoformat(
        last.split(",", 1)[0]
    )


def read_bundle(path: Path, through: datetime | None = None, last: int | None = None) -> list[Bar]:
    """A bundle's bars, those opening by ``through`` and the ``last`` of them when given; they
    become candles through the quality gate, as live ones do. The file is read as a stream,
    and only the rows kept are parsed past their open time."""
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        if header != BUNDLE_COLUMNS:
            raise ValueError(f"{path} must have the columns {','.join(BUNDLE_COLUMNS)}: {header}")
        rows: Iterator[list[str]] = reader
        if through is not None:
            rows = itertools.takewhile(lambda row: datetime.fromisoformat(row[0]) <= through, rows)
        kept = deque(rows, maxlen=last)
    return [Bar(datetime.fromisoformat(row[0]), *map(float, row[1:])) for row in kept]
