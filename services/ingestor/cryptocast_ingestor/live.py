"""Live ingestion: wake just after each candle closes, fetch what closed, publish in order.

State is one cursor per symbol and interval: the open time of the next candle to fetch. At
start it points ``backfill`` candles back, so downstream services rebuild their windows
(republishing is harmless: candle ids are deterministic). Every fetch asks for everything
from the cursor on, so candles missed while the network or the broker was away are
fetched on the next successful round; the cursor only moves past candles once they are
published.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptocast_common.events import floor_to_interval, interval_delta
from cryptocast_ingestor.datasets import Bar
from cryptocast_ingestor.publishing import Publish, Sleep, publish_until_done
from cryptocast_ingestor.quality import DEFAULT_JUMP_RULE, JumpRule, QualityGate
from cryptocast_ingestor.sources import CandleSource, SourceError

log = logging.getLogger(__name__)
GAP_PATIENCE = 3  # rounds to wait for a missing candle to appear before accepting the gap


@dataclass(frozen=True)
class LivePolicy:
    backfill: int = 200
    settle_seconds: float = 5.0  # after a close, give the source time to finish the candle
    lag_retry_seconds: float = 60.0  # a closed candle not there yet: ask again this soon
    max_backoff_seconds: float = 300.0
    jumps: JumpRule = DEFAULT_JUMP_RULE


@dataclass
class SourceHealth:
    """Logs a failing source once when it starts failing and once when it recovers."""

    source: str
    failures: int = 0

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            log.warning(
                "source unreachable; retrying with backoff",
                extra={"source": self.source, "error": str(error)},
            )
        else:
            log.debug(
                "source still unreachable", extra={"source": self.source, "failures": self.failures}
            )

    def succeeded(self) -> None:
        if self.failures:
            log.info(
                "source reachable again",
                extra={"source": self.source, "failed_attempts": self.failures},
            )
        self.failures = 0


@dataclass
class Stream:
    symbol: str
    interval: str
    cursor: datetime  # open time of the next candle to fetch
    gate: QualityGate
    gap_rounds: int = 0
    gaps_accepted: int = 0
    step: timedelta = field(init=False)

    def __post_init__(self) -> None:
        self.step = interval_delta(self.interval)

    def due(self, now: datetime) -> bool:
        return self.cursor + self.step <= now

    def log_fields(self, **details: object) -> dict[str, object]:
        """A log line's fields: this series, and ``details``."""
        return {"symbol": self.symbol, "interval": self.interval, **details}


def backoff_seconds(failures: int, cap: float, jitter: Callable[[], float]) -> float:
    """Exponential from 1 s, capped, with full jitter so replicas do not retry in step."""
    return min(cap, 2.0 ** (failures - 1)) * (0.5 + 0.5 * jitter())


def _until_first_hole(bars: Sequence[Bar], start: datetime, step: timedelta) -> int:
    """How many bars form an unbroken run from ``start``."""
    expected = start
    for index, bar in enumerate(bars):
        if bar.open_time != expected:
            return index
        expected += step
    return len(bars)


class LiveIngestor:
    def __init__(
        self,
        source: CandleSource,
        publish: Publish,
        policy: LivePolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ):
        self.source, self.publish, self.policy = source, publish, policy
        self.clock, self.sleep, self.jitter = clock, sleep, jitter
        self.health = SourceHealth(source.name)
        self.streams: list[Stream] = []
        self._added = asyncio.Event()  # wakes the loop for a series added while it waits

    def add(self, symbol: str, interval: str) -> None:
        """Backfill and follow a series (a second call for it changes nothing)."""
        if any((s.symbol, s.interval) == (symbol, interval) for s in self.streams):
            return
        self.source.check_interval(interval)
        now = self.clock()
        start = floor_to_interval(now, interval) - self.policy.backfill * interval_delta(interval)
        gate = QualityGate(symbol, interval, self.source.name, self.policy.jumps)
        self.streams.append(Stream(symbol, interval, start, gate))
        self._added.set()

    async def poll(self, stream: Stream, now: datetime) -> bool:
        """Fetch and publish what closed; True if everything expected by ``now`` arrived."""
        started = time.monotonic()
        bars = await self.source.fetch_closed(stream.symbol, stream.interval, stream.cursor, now)
        self.health.succeeded()
        run = _until_first_hole(bars, stream.cursor, stream.step)
        if run < len(bars):  # a candle is missing before later ones
            stream.gap_rounds += 1
            if stream.gap_rounds <= GAP_PATIENCE:
                log.info(
                    "missing candle, asking the source again",
                    extra=stream.log_fields(
                        missing_from=(stream.cursor + run * stream.step).isoformat(),
                        round=stream.gap_rounds,
                    ),
                )
                bars = bars[:run]
            else:
                stream.gaps_accepted += 1
                log.warning(
                    "source has no candle here; continuing after the gap",
                    extra=stream.log_fields(
                        gap_from=(stream.cursor + run * stream.step).isoformat(),
                        gap_to=bars[run].open_time.isoformat(),
                    ),
                )
                stream.gap_rounds = 0
        else:
            stream.gap_rounds = 0
        candles = stream.gate.admit(bars)
        await publish_until_done(self.publish, candles, self.sleep)
        if bars:
            stream.cursor = bars[-1].open_time + stream.step
        if len(bars) > 1:
            log.info(
                "candles published",
                extra=stream.log_fields(
                    fetched=len(bars),
                    published=len(candles),
                    through=stream.cursor.isoformat(),
                    per_second=round(len(bars) / max(time.monotonic() - started, 1e-6)),
                ),
            )
        return not stream.due(now)

    async def run(self) -> None:
        while True:
            now = self.clock()
            complete, failed = True, False
            for stream in sorted(self.streams, key=lambda s: s.cursor):
                if not stream.due(now):
                    continue
                try:
                    complete &= await self.poll(stream, now)
                except SourceError as error:
                    self.health.failed(error)
                    failed = True
                    break  # the source is down for everyone: back off first
            await self._pause(self._wait(now, complete, failed))

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a series is added meanwhile."""
        self._added.clear()
        sleeping = asyncio.ensure_future(self.sleep(seconds))
        added = asyncio.ensure_future(self._added.wait())
        _, pending = await asyncio.wait({sleeping, added}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if sleeping.done():
            sleeping.result()  # a sleep that raised (cancelled, or a test's stop) raises here

    def _wait(self, now: datetime, complete: bool, failed: bool) -> float:
        if failed:
            return backoff_seconds(
                self.health.failures, self.policy.max_backoff_seconds, self.jitter
            )
        if not complete:
            return self.policy.lag_retry_seconds
        next_close = min(s.cursor + s.step for s in self.streams)
        return max(0.0, (next_close - now).total_seconds()) + self.policy.settle_seconds
