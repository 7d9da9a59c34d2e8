"""How one prediction is judged against the actual close."""

from __future__ import annotations

from cryptocast_common.events import Prediction, Verification


def error_pct(predicted: float, actual: float) -> float:
    return abs(predicted - actual) / actual * 100


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def verify(prediction: Prediction, actual_close: float, tolerance_pct: float) -> Verification:
    base = prediction.based_on.close
    predicted_move = _sign(prediction.predicted_close - base)
    actual_move = _sign(actual_close - base)
    error = error_pct(prediction.predicted_close, actual_close)
    return Verification(
        symbol=prediction.symbol,
        interval=prediction.interval,
        prediction_id=prediction.event_id,
        model=prediction.model,
        target_time=prediction.target_time,
        based_on_time=prediction.based_on.close_time,
        based_on_close=base,
        predicted_close=prediction.predicted_close,
        actual_close=actual_close,
        error_pct=error,
        tolerance_pct=tolerance_pct,
        within_tolerance=error <= tolerance_pct,
        direction_correct=None if 0 in (predicted_move, actual_move)
        else predicted_move == actual_move,
        naive_error_pct=error_pct(base, actual_close),
    )
