"""Where candles come from. A live source answers one question: the closed candles of a
symbol and interval that opened at or after a given time."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from cryptocast_common.runtime import ConfigurationError
from cryptocast_ingestor.datasets import Bar


class SourceError(RuntimeError):
    """A fetch failed in a way worth retrying later (network, rate limit, bad answer)."""


class UnsupportedInterval(ConfigurationError):
    """The source cannot provide candles of this interval at all."""


class CandleSource(Protocol):
    name: str  # recorded as each candle's ``source``

    def check_interval(self, interval: str) -> None:
        """Raise UnsupportedInterval if this source can never serve ``interval``."""
        ...

    async def fetch_closed(
        self, symbol: str, interval: str, since: datetime, now: datetime
    ) -> list[Bar]:
        """Candles with ``since <= open_time`` that closed by ``now``, oldest first."""
        ...

    async def close(self) -> None: ...
