"""Small builders of valid events for tests, and the candle storage inference reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptocast_common.events import BasedOn, Candle, ModelRef, Prediction

T0 = datetime(2026, 8, 1, tzinfo=UTC)
STEP = timedelta(hours=4)


def candle(i: int = 0, close: float = 100.0, symbol: str = "BTC", **extra: object) -> Candle:
    fields: dict[str, object] = dict(
        symbol=symbol,
        interval="4h",
        open_time=T0 + i * STEP,
        close_time=T0 + (i + 1) * STEP,
        open=close,
        high=close * 1.01,
        low=close * 0.99,
        close=close,
        volume=10.0,
        source="test",
    )
    fields.update(extra)
    return Candle(**fields)  # type: ignore[arg-type]


def prediction(
    i: int = 0,
    base: float = 100.0,
    predicted: float = 101.0,
    symbol: str = "BTC",
    model: str = "naive",
    horizon: int = 1,
) -> Prediction:
    """Made when candle ``i`` closed, for candle ``i + horizon``."""
    return Prediction(
        symbol=symbol,
        interval="4h",
        based_on=BasedOn(close_time=T0 + (i + 1) * STEP, close=base),
        target_time=T0 + (i + 1 + horizon) * STEP,
        horizon=horizon,
        predicted_close=predicted,
        model=ModelRef(name=model, version="1"),
    )


class StoredCandles:
    """Candle history as storage would answer it; counts the reads."""

    def __init__(self, candles: list[Candle]) -> None:
        self.candles = candles
        self.calls = 0

    async def before(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        self.calls += 1
        found = [c for c in self.candles if c.symbol == symbol and c.close_time <= end]
        return found[-limit:]
