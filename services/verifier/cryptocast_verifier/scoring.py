"""How one prediction is judged against the actual close."""

from __future__ import annotations

from cryptocast_common.events import Prediction, Verification
from cryptocast_common.metrics import direction_correct, error_pct


def verify(prediction: Prediction, actual_close: float, tolerance_pct: float) -> Verification:
    base = prediction.based_on.close
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
        direction_correct=direction_correct(prediction.predicted_close, actual_close, base),
        naive_error_pct=error_pct(base, actual_close),
    )
