"""How one prediction is judged against the actual close: the point forecast (error,
tolerance, direction, against no change) and, when it has one, its distribution (interval
coverage and width, and the Brier term of ``p_up``)."""

from __future__ import annotations

from cryptocast_common.events import Prediction, Verification
from cryptocast_common.metrics import direction_correct, error_pct


def verify(prediction: Prediction, actual_close: float, tolerance_pct: float) -> Verification:
    base = prediction.based_on.close
    error = error_pct(prediction.predicted_close, actual_close)
    went_up = None if actual_close == base else actual_close > base
    low, high = prediction.interval_80, prediction.interval_95
    p_up = prediction.p_up
    return Verification(
        symbol=prediction.symbol,
        interval=prediction.interval,
        prediction_id=prediction.event_id,
        model=prediction.model,
        target_time=prediction.target_time,
        horizon=prediction.horizon,
        based_on_time=prediction.based_on.close_time,
        based_on_close=base,
        predicted_close=prediction.predicted_close,
        actual_close=actual_close,
        error_pct=error,
        tolerance_pct=tolerance_pct,
        within_tolerance=error <= tolerance_pct,
        direction_correct=direction_correct(prediction.predicted_close, actual_close, base),
        naive_error_pct=error_pct(base, actual_close),
        inside_80=None if low is None else low.holds(actual_close),
        inside_95=None if high is None else high.holds(actual_close),
        width_80_pct=None if low is None else low.width_pct(base),
        width_95_pct=None if high is None else high.width_pct(base),
        went_up=went_up,
        brier=None if p_up is None or went_up is None else (p_up - went_up) ** 2,
        role=prediction.role,
        gate=prediction.gate,
        model_error_pct=(
            None
            if prediction.model_close is None
            else error_pct(prediction.model_close, actual_close)
        ),
    )
