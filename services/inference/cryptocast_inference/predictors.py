"""Predictors turn windows of closed candles into the next candle's predicted close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cryptocast_common.events import MAX_HORIZON, Candle, ModelCard, ModelRef, ModelSkill
from cryptocast_inference.distribution import Forecast


class Predictor(Protocol):
    model: ModelRef
    window: int  # candles each prediction needs, oldest first, the last one just closed
    interval: str | None  # of the candles it was fitted on; None: any (the baseline)
    horizons: int  # it forecasts the close 1 .. horizons candles ahead

    @property
    def skill(self) -> ModelSkill | None:
        """Held-out quality, sent with each prediction."""
        ...

    def predict(self, windows: Sequence[Sequence[Candle]], horizon: int = 1) -> list[float]:
        """One predicted close ``horizon`` candles ahead per window, all windows in one call."""
        ...


@runtime_checkable
class DistributionPredictor(Protocol):
    """A predictor that also says how uncertain it is: intervals and P(up)."""

    def predict_distribution(
        self, windows: Sequence[Sequence[Candle]], horizon: int = 1
    ) -> list[Forecast]: ...


@runtime_checkable
class CardedPredictor(Protocol):
    """A model with a card: what it is and how it did on held-out data."""

    def cards(self, symbols: Sequence[str], interval: str) -> list[ModelCard]: ...


class NaivePredictor:
    """No change: the next close equals the last one. The baseline every model must beat."""

    model = ModelRef(name="naive", version="1")
    skill = None
    window = 1
    interval: str | None = None
    horizons = MAX_HORIZON

    def predict(self, windows: Sequence[Sequence[Candle]], horizon: int = 1) -> list[float]:
        return [window[-1].close for window in windows]
