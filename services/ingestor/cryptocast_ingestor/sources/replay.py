"""Replay of bundled history: one timeline shared by every symbol, through the same quality
gate as live candles, published as a backfill and then one step at a time. Longer intervals
than the bundle's are built from its candles, as an exchange builds them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptocast_common.events import Candle, interval_delta
from cryptocast_ingestor.datasets import CleaningReport, read_bundle, resample
from cryptocast_ingestor.publishing import Publish, Sleep, publish_until_done
from cryptocast_ingestor.quality import DEFAULT_JUMP_RULE, JumpRule, QualityGate

log = logging.getLogger(__name__)
BACKFILL_BATCH = 500
# Bars gated before the replayed ones only to warm the gate up, in volatility windows.
GATE_WARM_UP_FACTOR = 4


def load_timeline(
    folder: Path,
    symbols: Sequence[str],
    interval: str,
    jumps: JumpRule = DEFAULT_JUMP_RULE,
    last: int | None = None,
    built_from: str | None = None,
) -> list[list[Candle]]:
    """Candles of every symbol grouped by open time, over the window all symbols cover; the
    ``last`` steps of it when given. With ``built_from``, the bundles of that shorter interval
    are read and aggregated into ``interval`` candles (only complete ones).

    Restricting to the common window makes the demo's prices one moment of the market. Only
    the bars of that window's ``last`` steps, and a few volatility windows before them to warm
    the gate up, become candles: a replay of the recent past costs what it replays, not the
    history.
    """
    bundles = {}
    stored = built_from or interval
    for symbol in symbols:
        path = folder / f"{symbol}_{stored}.csv.gz"
        if not path.exists():
            raise FileNotFoundError(f"no replay data for {symbol} {stored}: {path} is missing")
        bars = read_bundle(path)
        if built_from:
            bars = resample(bars, interval, CleaningReport(path.name), built_from)
        bundles[symbol] = (path, bars)
    # The common window ends with the coin whose data ends first (a delisted one, say).
    common_end = min((bars[-1].open_time for _, bars in bundles.values() if bars), default=None)
    series = {}
    for symbol, (path, bars) in bundles.items():
        if last is not None and common_end is not None:
            kept = [bar for bar in bars if bar.open_time <= common_end]
            bars = kept[-(last + GATE_WARM_UP_FACTOR * jumps.volatility_window) :]
        gate = QualityGate(symbol, interval, f"replay:{folder.name}", jumps)
        series[symbol] = gate.admit(bars)
        if not series[symbol]:
            raise ValueError(f"{path} holds no candles that pass the quality gate")
    del bundles
    start = max(candles[0].open_time for candles in series.values())
    end = min(candles[-1].open_time for candles in series.values())
    steps: dict[datetime, list[Candle]] = defaultdict(list)
    for symbol in symbols:
        for candle in series[symbol]:
            if start <= candle.open_time <= end:
                steps[candle.open_time].append(candle)
    times = sorted(steps)
    return [steps[t] for t in (times if last is None else times[max(0, len(times) - last) :])]


def load_timelines(
    folder: Path,
    symbols: Sequence[str],
    intervals: Sequence[str],
    jumps: JumpRule = DEFAULT_JUMP_RULE,
    last: int | None = None,
) -> list[list[Candle]]:
    """``load_timeline`` of every interval, grouped by close time: the shortest interval's
    bundles are replayed, and the longer intervals' candles built from them (each a multiple
    of it), ``last`` of each interval when given."""
    base = min(intervals, key=interval_delta)
    by_close: dict[datetime, list[Candle]] = defaultdict(list)
    for interval in sorted(intervals, key=interval_delta):
        if interval_delta(interval) % interval_delta(base):
            raise ValueError(
                f"interval {interval} is not a multiple of {base}, the shortest served: it "
                f"cannot be built from the replayed {base} candles"
            )
        built_from = None if interval == base else base
        for step in load_timeline(folder, symbols, interval, jumps, last, built_from):
            by_close[step[0].close_time] += step
    return [by_close[moment] for moment in sorted(by_close)]


@dataclass
class Timeline:
    """The steps a replay publishes, and how many it has taken: a coin added meanwhile joins
    the steps still to come, and publishes the earlier part of its history at once."""

    steps: list[list[Candle]]
    taken: int = 0

    def join(self, candles: Sequence[Candle]) -> list[Candle]:
        """Add a coin's candles to the steps closing when they close; those of steps already
        taken are returned, to publish now (the coin's backfill). Candles outside the
        timeline are left out."""
        position = {step[0].close_time: i for i, step in enumerate(self.steps) if step}
        now = []
        for candle in candles:
            i = position.get(candle.close_time)
            if i is not None and i < self.taken:
                now.append(candle)
            elif i is not None:
                self.steps[i].append(candle)
        return now


async def replay(
    timeline: Timeline,
    publish: Publish,
    *,
    backfill: int,
    live: int,
    pace_seconds: float,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Publish the last ``backfill`` steps before the final ``live`` ones at once, then the
    ``live`` steps one every ``pace_seconds``."""
    steps = timeline.steps
    split = max(0, len(steps) - live)
    backlog = [candle for step in steps[max(0, split - backfill) : split] for candle in step]
    timeline.taken = split
    started = time.monotonic()
    for start in range(0, len(backlog), BACKFILL_BATCH):
        await publish_until_done(publish, backlog[start : start + BACKFILL_BATCH], sleep)
        done = min(start + BACKFILL_BATCH, len(backlog))
        rate = done / max(time.monotonic() - started, 1e-9)
        log.info(
            "backfill progress",
            extra={"published": done, "total": len(backlog), "per_second": round(rate)},
        )
    for index in range(split, len(steps)):
        await sleep(pace_seconds)
        timeline.taken = index + 1
        step = steps[index]
        await publish_until_done(publish, step, sleep)
        log.info(
            "candles published",
            extra={"open_time": step[0].open_time.isoformat(), "symbols": [c.symbol for c in step]},
        )
    log.info("replay finished", extra={"steps": len(steps)})
