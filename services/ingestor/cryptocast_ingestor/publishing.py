"""Publishing candles so that none is lost while the broker is away."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from cryptocast_common.bus import retry_delay
from cryptocast_common.events import Event

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Event]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
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
