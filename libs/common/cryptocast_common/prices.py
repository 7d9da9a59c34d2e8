"""Price sanity, one rule wherever prices come from: events (``Price``), candles from files
and exchanges (the ingestor's quality gate and data loaders, the trainer's CSV reader) and
prices people send (alert thresholds, recorded predictions)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Volume = Annotated[float, Field(ge=0, allow_inf_nan=False)]

NOT_A_NUMBER = "price or volume not a number"
NON_POSITIVE_PRICE = "non-positive price"
NEGATIVE_VOLUME = "negative volume"
NOT_BRACKETING = "high/low not bracketing open/close"


def is_price(value: float) -> bool:
    """What ``Price`` accepts: a finite number above zero."""
    return math.isfinite(value) and value > 0


def brackets(open_: float, high: float, low: float, close: float) -> bool:
    """High is the highest of the four prices and low the lowest."""
    return high >= max(open_, close) and low <= min(open_, close)


def value_problem(open_: float, high: float, low: float, close: float, volume: float) -> str | None:
    """Why the values cannot be a candle's, each on its own; None if they can."""
    if not all(map(math.isfinite, (open_, high, low, close, volume))):
        return NOT_A_NUMBER
    if not all(map(is_price, (open_, high, low, close))):
        return NON_POSITIVE_PRICE
    if volume < 0:
        return NEGATIVE_VOLUME
    return None


def ohlcv_problem(open_: float, high: float, low: float, close: float, volume: float) -> str | None:
    """Why these cannot be one candle's prices and volume; None if they can."""
    problem = value_problem(open_, high, low, close, volume)
    if problem is None and not brackets(open_, high, low, close):
        return NOT_BRACKETING
    return problem
