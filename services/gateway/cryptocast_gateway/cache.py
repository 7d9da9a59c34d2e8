"""The latest prediction per symbol, kept in memory with what the API answers for it.

``render`` comes from the API layer (``api.latest.render_latest``); it runs once per new
prediction, so that the hot reads only look their answer up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cryptocast_common.events import Prediction

Rendered = TypeVar("Rendered")


@dataclass(frozen=True)
class Latest(Generic[Rendered]):
    prediction: Prediction
    rendered: Rendered


class LatestPredictions(Generic[Rendered]):
    def __init__(self, interval: str, render: Callable[[Prediction], Rendered]) -> None:
        self.interval, self.render = interval, render
        self._latest: dict[str, Latest[Rendered]] = {}

    def update(self, prediction: Prediction) -> None:
        """Keep the newest one-step forecast of this interval (what the hot reads serve)."""
        if prediction.interval != self.interval or prediction.horizon != 1:
            return
        current = self._latest.get(prediction.symbol)
        if current is None or prediction.target_time >= current.prediction.target_time:
            self._latest[prediction.symbol] = Latest(prediction, self.render(prediction))

    def get(self, symbol: str) -> Latest[Rendered] | None:
        return self._latest.get(symbol)
