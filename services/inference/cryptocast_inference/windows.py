"""The last N contiguous candles per symbol and interval."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from enum import Enum

from cryptocast_common.events import Candle


class Added(Enum):
    EXTENDED = "extended"  # the next candle in sequence
    REPLACED = "replaced"  # the same candle again (redelivery or republish)
    STALE = "stale"  # older than the newest we hold: ignored
    RESTARTED = "restarted"  # first candle seen, or one after a gap: the window starts over


class CandleWindows:
    def __init__(self, size: int) -> None:
        self.size = size
        self._windows: dict[tuple[str, str], deque[Candle]] = {}

    def add(self, candle: Candle) -> Added:
        window = self._windows.get((candle.symbol, candle.interval))
        if window is None or candle.open_time > window[-1].close_time:
            self._windows[(candle.symbol, candle.interval)] = deque([candle], maxlen=self.size)
            return Added.RESTARTED
        last = window[-1]
        if candle.open_time == last.close_time:
            window.append(candle)
            return Added.EXTENDED
        if candle.open_time == last.open_time:
            window[-1] = candle
            return Added.REPLACED
        return Added.STALE

    def seed(self, history: Sequence[Candle], latest: Candle) -> None:
        """Extend the window ending at ``latest`` backwards with older candles (oldest first)."""
        held = self._windows.get((latest.symbol, latest.interval))
        chain = list(reversed(held)) if held and held[-1] == latest else [latest]
        for candle in reversed(history):
            if candle.close_time == chain[-1].open_time:
                chain.append(candle)
            elif candle.close_time < chain[-1].open_time:
                break
        self._windows[(latest.symbol, latest.interval)] = deque(reversed(chain), maxlen=self.size)

    def full(self, candle: Candle) -> list[Candle] | None:
        """The window ending at ``candle`` if it holds ``size`` candles."""
        window = self._windows.get((candle.symbol, candle.interval))
        if window is None or len(window) < self.size or window[-1] != candle:
            return None
        return list(window)
