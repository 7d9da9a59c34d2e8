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
from cryptocast_ingestor.datasets import CleaningReport, bundle_span, read_bundle, resample
from cryptocast_ingestor.publishing import Publish, Sleep, publish_until_done
from cryptocast_ingestor.quality import DEFAULT_JUMP_RULE, Admitted, JumpRule, QualityGate

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
) -> list[list[Admitted]]:
    """Candles of every symbol grouped by open time, over the window all symbols cover; the
    ``last`` steps of it when given. With ``built_from``, the bundles of that shorter interval
    are read and aggregated into ``interval`` candles (only complete ones).

    Restricting to the common window makes the demo's prices one moment of the market. Only
    the bars of that window's ``last`` steps, and a few volatility windows before them to warm
    the gate up, are parsed: a replay of the recent past costs what it replays, not the
    history. The bundles are read one at a time and each candle is built when published, so a
    replay of the whole history holds its bars, not its files or its candles.
    """
    stored = built_from or interval
    paths, spans = [], []
    for symbol in symbols:
        path = folder / f"{symbol}_{stored}.csv.gz"
        if not path.exists():
            raise FileNotFoundError(f"no replay data for {symbol} {stored}: {path} is missing")
        span = bundle_span(path)
        if span is None:
            raise ValueError(f"{path} holds no candles")
        paths.append(path)
        spans.append(span)
    # The common window starts with the coin whose data starts last, and ends with the one
    # whose data ends first (a delisted one, say).
    common_start = max(first for first, _ in spans)
    common_end = min(last_time for _, last_time in spans)
    if common_start > common_end:
        raise ValueError(f"the bundles of {', '.join(symbols)} share no period to replay")
    kept = None if last is None else last + GATE_WARM_UP_FACTOR * jumps.volatility_window
    series = {}
    for symbol, path in zip(symbols, paths, strict=True):
        if built_from:
            per_bar = interval_delta(interval) // interval_delta(built_from)
            bars = read_bundle(path, common_end, None if kept is None else (kept + 1) * per_bar)
            bars = resample(bars, interval, CleaningReport(path.name), built_from)
            bars = bars if kept is None else bars[-kept:]
        else:
            bars = read_bundle(path, common_end, kept)
        gate = QualityGate(symbol, interval, f"replay:{folder.name}", jumps)
        series[symbol] = [a for a in gate.screen(bars) if a.bar.open_time >= common_start]
        if not series[symbol]:
            raise ValueError(f"{path} holds no candles that pass the quality gate")
    start = max(admitted[0].bar.open_time for admitted in series.values())
    end = min(admitted[-1].bar.open_time for admitted in series.values())
    steps: dict[datetime, list[Admitted]] = defaultdict(list)
    for symbol in symbols:
        for admitted in series[symbol]:
            if start <= admitted.bar.open_time <= end:
                steps[admitted.bar.open_time].append(admitted)
    times = sorted(steps)
    return [steps[t] for t in (times if last is None else times[max(0, len(times) - last) :])]


def load_timelines(
    folder: Path,
    symbols: Sequence[str],
    intervals: Sequence[str],
    jumps: JumpRule = DEFAULT_JUMP_RULE,
    last: int | None = None,
) -> list[list[Admitted]]:
    """``load_timeline`` of every interval, grouped by close time: the shortest interval's
    bundles are replayed, and the longer intervals' candles built from them (each a multiple
    of it), ``last`` of each interval when given."""
    base = min(intervals, key=interval_delta)
    by_close: dict[datetime, list[Admitted]] = defaultdict(list)
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

    steps: list[list[Admitted]]
    taken: int = 0

    def join(self, coin: Sequence[Admitted]) -> list[Candle]:
        """Add a coin's candles to the steps closing when they close; those of steps already
        taken are returned, to publish now (the coin's backfill). Candles outside the
        timeline are left out."""
        position = {step[0].close_time: i for i, step in enumerate(self.steps) if step}
        now = []
        for admitted in coin:
            i = position.get(admitted.close_time)
            if i is not None and i < self.taken:
                now.append(admitted.candle())
            elif i is not None:
                self.steps[i].append(admitted)
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
    backlog = [admitted for step in steps[max(0, split - backfill) : split] for admitted in step]
    timeline.taken = split
    started = time.monotonic()
    for start in range(0, len(backlog), BACKFILL_BATCH):
        batch = [admitted.candle() for admitted in backlog[start : start + BACKFILL_BATCH]]
        await publish_until_done(publish, batch, sleep)
        done = start + len(batch)
        rate = done / max(time.monotonic() - started, 1e-9)
        log.info(
            "backfill progress",
            extra={"published": done, "total": len(backlog), "per_second": round(rate)},
        )
    for index in range(split, len(steps)):
        await sleep(pace_seconds)
        timeline.taken = index + 1
        step = [admitted.candle() for admitted in steps[index]]
        await publish_until_done(publish, step, sleep)
        log.info(
            "candles published",
            extra={"open_time": step[0].open_time.isoformat(), "symbols": [c.symbol for c in step]},
        )
    log.info("replay finished", extra={"steps": len(steps)})
