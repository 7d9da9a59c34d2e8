"""Forecast accuracy, one definition for the evaluator, the verifier and the gateway.

Every one-step forecast is judged against the close it predicted (``actual``) and the close
it was made from (``previous``). Scale-dependent errors (MAE, RMSE) are in price units;
MASE divides the forecast's MAE by the naive no-change forecast's MAE over the same points,
so below 1 means better than "the price stays where it is".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

TOLERANCE_PCT = 2.0


class ForecastMetrics(TypedDict):
    n: int
    mae: float | None
    rmse: float | None
    mape: float | None  # percent
    mase: float | None  # None when the naive forecast made no error at all
    directional_accuracy: float | None  # share of correct signs among non-ties
    direction_ties: int  # predicted or actual change exactly zero: no direction to judge
    within_2pct: float | None  # share of forecasts within TOLERANCE_PCT of the actual close


def error_pct(predicted: float, actual: float) -> float:
    return abs(predicted - actual) / actual * 100


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def direction_correct(predicted: float, actual: float, previous: float) -> bool | None:
    """Whether the forecast got the direction of the move right; None on a tie."""
    predicted_move, actual_move = _sign(predicted - previous), _sign(actual - previous)
    if predicted_move == 0 or actual_move == 0:
        return None
    return predicted_move == actual_move


def forecast_metrics(
    predicted: Sequence[float],
    actual: Sequence[float],
    previous: Sequence[float],
) -> ForecastMetrics:
    if not len(predicted) == len(actual) == len(previous):
        raise ValueError("predicted, actual and previous must have the same length")
    n = len(predicted)
    if n == 0:
        return ForecastMetrics(
            n=0,
            mae=None,
            rmse=None,
            mape=None,
            mase=None,
            directional_accuracy=None,
            direction_ties=0,
            within_2pct=None,
        )
    errors = [p - a for p, a in zip(predicted, actual, strict=True)]
    mae = sum(abs(e) for e in errors) / n
    naive_mae = sum(abs(b - a) for b, a in zip(previous, actual, strict=True)) / n
    directions = [
        direction_correct(p, a, b) for p, a, b in zip(predicted, actual, previous, strict=True)
    ]
    judged = [d for d in directions if d is not None]
    pcts = [error_pct(p, a) for p, a in zip(predicted, actual, strict=True)]
    return ForecastMetrics(
        n=n,
        mae=mae,
        rmse=math.sqrt(sum(e * e for e in errors) / n),
        mape=sum(pcts) / n,
        mase=mae / naive_mae if naive_mae > 0 else None,
        directional_accuracy=sum(judged) / len(judged) if judged else None,
        direction_ties=n - len(judged),
        within_2pct=sum(p <= TOLERANCE_PCT for p in pcts) / n,
    )
