"""Checks every candle passes before it is published.

A candle is rejected, with its reason logged and counted, if its open time is not on the
interval grid, its prices are not positive, its volume is negative, or high and low do not
bracket open and close. A close that jumps more than ``JumpRule.sigmas`` times the recent
volatility of log returns is held until the next candle: if the price stays near the new
level the jump was real and both are published; if it falls back more than half way, the
jump was a bad print and is rejected.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptocast_common.events import Candle, floor_to_interval, interval_delta
from cryptocast_ingestor.datasets import Bar, consistency_problem

log = logging.getLogger(__name__)
MIN_RETURNS_FOR_JUMPS = 10  # too little history: no volatility to measure jumps against


@dataclass(frozen=True)
class JumpRule:
    """A close more than ``sigmas`` times the volatility of the last ``volatility_window``
    log returns away from the previous close waits for the next candle's confirmation."""

    sigmas: float = 10.0
    volatility_window: int = 50


DEFAULT_JUMP_RULE = JumpRule()


@dataclass(frozen=True, slots=True)
class Admitted:
    """A bar the gate passed, and the series it is a candle of. The candle is built when it is
    needed: it is ten times the size of the bar, and a replay of the whole history holds
    140,000 of them."""

    symbol: str
    interval: str
    source: str
    bar: Bar

    @property
    def close_time(self) -> datetime:
        return self.bar.open_time + interval_delta(self.interval)

    def candle(self) -> Candle:
        bar = self.bar
        return Candle(
            symbol=self.symbol,
            interval=self.interval,
            open_time=bar.open_time,
            close_time=self.close_time,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            source=self.source,
        )


@dataclass
class QualityGate:
    """One per symbol and interval; remembers recent closes and a held jump."""

    symbol: str
    interval: str
    source: str
    jumps: JumpRule = DEFAULT_JUMP_RULE
    rejected: Counter[str] = field(default_factory=Counter)
    _returns: deque[float] = field(init=False)
    _last_close: float | None = field(default=None, init=False)
    _held: Bar | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._returns = deque(maxlen=self.jumps.volatility_window)

    def _reject(self, bar: Bar, reason: str, **details: object) -> None:
        self.rejected[reason] += 1
        log.warning(
            "candle rejected: %s",
            reason,
            extra={
                "symbol": self.symbol,
                "interval": self.interval,
                "open_time": bar.open_time.isoformat(),
                "reason": reason,
                **details,
            },
        )

    def _accept(self, bar: Bar) -> Admitted:
        if self._last_close is not None:
            self._returns.append(math.log(bar.close / self._last_close))
        self._last_close = bar.close
        return Admitted(self.symbol, self.interval, self.source, bar)

    def _jump(self, bar: Bar) -> float | None:
        """The log return in units of recent volatility, if there is enough history."""
        if self._last_close is None or len(self._returns) < MIN_RETURNS_FOR_JUMPS:
            return None
        # The population standard deviation in floats: statistics.pstdev's exact fractions
        # made it most of a whole-history replay's start-up.
        mean = math.fsum(self._returns) / len(self._returns)
        volatility = math.sqrt(
            math.fsum([(r - mean) ** 2 for r in self._returns]) / len(self._returns)
        )
        return abs(math.log(bar.close / self._last_close)) / volatility if volatility else None

    def admit(self, bars: Sequence[Bar]) -> list[Candle]:
        """The candles that pass, in time order; a suspected jump waits for its successor."""
        return [admitted.candle() for admitted in self.screen(bars)]

    def screen(self, bars: Sequence[Bar]) -> list[Admitted]:
        """``admit``, with each candle left to build when it is needed."""
        accepted = []
        for bar in bars:
            problem = consistency_problem(bar)
            if problem is None and bar.open_time != floor_to_interval(bar.open_time, self.interval):
                problem = f"open time not aligned to {self.interval}"
            if problem:
                self._reject(bar, problem)
                continue
            if self._held is not None:
                held, self._held = self._held, None
                previous = self._last_close or held.close
                jump = math.log(held.close / previous)
                back = math.log(bar.close / held.close)
                if -back / jump > 0.5:  # retraced more than half: the jump was a bad print
                    self._reject(
                        held,
                        "price jump not confirmed by the next candle",
                        log_return=round(jump, 4),
                        next_log_return=round(back, 4),
                    )
                else:
                    accepted.append(self._accept(held))
            jump_size = self._jump(bar)
            if jump_size is not None and jump_size > self.jumps.sigmas:
                self._held = bar
                log.info(
                    "price jump held for confirmation by the next candle",
                    extra={
                        "symbol": self.symbol,
                        "open_time": bar.open_time.isoformat(),
                        "sigmas": round(jump_size, 1),
                    },
                )
                continue
            accepted.append(self._accept(bar))
        return accepted

    @property
    def holding(self) -> bool:
        return self._held is not None
