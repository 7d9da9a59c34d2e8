"""The latest prediction per symbol, kept in memory and pre-serialized for the hot path."""

from __future__ import annotations

from dataclasses import dataclass

from cryptocast_common.events import Prediction
from cryptocast_gateway.legacy import flask_json, prediction_view


@dataclass(frozen=True)
class Latest:
    prediction: Prediction
    legacy_body: bytes  # GET /<coin>
    v1_body: bytes  # GET /api/v1/predictions/<symbol>/latest


class LatestPredictions:
    def __init__(self, interval: str) -> None:
        self.interval = interval
        self._latest: dict[str, Latest] = {}

    def update(self, prediction: Prediction) -> None:
        if prediction.interval != self.interval:
            return
        current = self._latest.get(prediction.symbol)
        if current is None or prediction.target_time >= current.prediction.target_time:
            self._latest[prediction.symbol] = Latest(
                prediction, flask_json(prediction_view(prediction)), prediction.to_json())

    def get(self, symbol: str) -> Latest | None:
        return self._latest.get(symbol)
