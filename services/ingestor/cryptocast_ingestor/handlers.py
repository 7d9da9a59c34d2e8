"""The ingestor's work: publish candles in time order, first a backfill, then paced."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from cryptocast_common.bus import retry_delay
from cryptocast_common.events import Candle, Event

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Event]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
BACKFILL_BATCH = 500
REPUBLISH_DELAY = 0.1  # first wait after a failed publish; doubles up to the cap
REPUBLISH_DELAY_CAP = 5.0


async def publish_until_done(publish: Publish, events: Sequence[Event], sleep: Sleep) -> None:
    """Keep trying while the broker is away: a closed candle is never dropped."""
    attempt = 0
    while True:
        try:
            await publish(events)
            if attempt:
                log.info("publishing works again", extra={"after_attempts": attempt})
            return
        except Exception as exc:  # aio-pika raises several unrelated types while reconnecting
            attempt += 1
            if attempt == 1:
                log.warning(
                    "publish failed, retrying until the broker is back", extra={"error": repr(exc)}
                )
            await sleep(min(retry_delay(REPUBLISH_DELAY, attempt), REPUBLISH_DELAY_CAP))


async def replay(
    steps: Sequence[Sequence[Candle]],
    publish: Publish,
    *,
    backfill: int,
    live: int,
    pace_seconds: float,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Publish the last ``backfill`` steps before the final ``live`` ones at once, then the
    ``live`` steps one every ``pace_seconds``."""
    split = max(0, len(steps) - live)
    backlog = [candle for step in steps[max(0, split - backfill) : split] for candle in step]
    started = time.monotonic()
    for start in range(0, len(backlog), BACKFILL_BATCH):
        await publish_until_done(publish, backlog[start : start + BACKFILL_BATCH], sleep)
        done = min(start + BACKFILL_BATCH, len(backlog))
        rate = done / max(time.monotonic() - started, 1e-9)
        log.info(
            "backfill progress",
            extra={"published": done, "total": len(backlog), "per_second": round(rate)},
        )
    for step in steps[split:]:
        await sleep(pace_seconds)
        await publish_until_done(publish, step, sleep)
        log.info(
            "candles published",
            extra={"open_time": step[0].open_time.isoformat(), "symbols": [c.symbol for c in step]},
        )
    log.info("replay finished", extra={"steps": len(steps)})
