"""Recent candles per series, from which the window ending at any of them is assembled.

Candles can come out of order (a message redelivered after a crash is handled after newer
ones), so the window of an older candle must still be found: each series keeps its last
``size + reorder`` candles by open time, and a window is the ``size`` contiguous candles
ending at the one asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptocast_common.events import Candle, interval_delta

REORDER = 64  # how far behind the newest candle a late one still finds its window here


class CandleWindows:
    def __init__(self, size: int, reorder: int = REORDER) -> None:
        self.size = size
        self._keep = size + reorder
        self._series: dict[tuple[str, str], dict[datetime, Candle]] = {}
        # Series whose older candles are to be read from storage once more.
        self._short: set[tuple[str, str]] = set()

    def grow(self, size: int) -> None:
        """Assemble windows of ``size`` from now on (a longer-sighted model was added): every
        series held may read the older candles it now lacks back from storage once more."""
        if size > self.size:
            self._keep += size - self.size
            self.size = size
            self._short |= set(self._series)

    def knows(self, candle: Candle) -> bool:
        """Whether the candle before ``candle`` is held (it came on the bus, or storage was
        read for it already): if not, storage may have what is missing. That is the first
        candle of a series here, one older than all held, and the first after a stretch this
        replica did not see (another one was active meanwhile)."""
        series = (candle.symbol, candle.interval)
        if series in self._short:
            self._short.discard(series)
            return False
        held = self._series.get(series, {})
        return candle.open_time - interval_delta(candle.interval) in held

    def forget_reads(self, candle: Candle) -> None:
        """The read-back for this series failed: the next candle of it asks storage again."""
        self._short.add((candle.symbol, candle.interval))

    def held_before(self, candle: Candle) -> int:
        """How many candles of its series older than ``candle`` are held."""
        held = self._series.get((candle.symbol, candle.interval), {})
        return sum(open_time < candle.open_time for open_time in held)

    def add(self, candle: Candle) -> None:
        """Hold ``candle`` (the newer of two with the same open time replaces the other)."""
        self._hold([candle])

    def seed(self, history: Sequence[Candle]) -> None:
        """Hold older candles read back after a restart."""
        self._hold(history)

    def _hold(self, candles: Sequence[Candle]) -> None:
        for candle in candles:
            held = self._series.setdefault((candle.symbol, candle.interval), {})
            held[candle.open_time] = candle
            if len(held) > self._keep + 16:  # trimmed in steps, not on every candle
                for open_time in sorted(held)[: len(held) - self._keep]:
                    del held[open_time]

    def full(self, candle: Candle, size: int | None = None) -> list[Candle] | None:
        """The ``size`` (at most the size held) contiguous candles ending at ``candle``,
        oldest first, if all held."""
        held = self._series.get((candle.symbol, candle.interval), {})
        step = interval_delta(candle.interval)
        size = self.size if size is None else min(size, self.size)
        window = [candle]
        while len(window) < size:
            before = held.get(window[-1].open_time - step)
            if before is None:
                return None
            window.append(before)
        window.reverse()
        return window
