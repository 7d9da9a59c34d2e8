"""The original CryptoCast API's JSON shapes, byte for byte.

The original was Flask: ``jsonify`` sorts keys, escapes non-ASCII, separates compactly and
ends the body with a newline; ``flask_json`` reproduces that so existing clients see the same
bytes. Prices are "$1,234.56" strings, with four decimals under $10 so small coins keep their
precision.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cryptocast_common.events import Prediction, Verification


def flask_json(value: Any) -> bytes:
    return (
        json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")) + "\n"
    ).encode()


def _decimals(reference: float) -> int:
    return 4 if abs(reference) < 10 else 2


def money(amount: float, reference: float | None = None) -> str:
    """``$45,234.56``; the number of decimals follows ``reference`` (default: the amount)."""
    return f"${amount:,.{_decimals(amount if reference is None else reference)}f}"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def display_time(moment: datetime) -> str:
    """``Monday, November 24th, at 14:30`` (UTC)."""
    return f"{moment:%A, %B} {_ordinal(moment.day)}, at {moment:%H:%M}"


def prediction_view(prediction: Prediction) -> dict[str, Any]:
    """``GET /<coin>``: the latest prediction as the original stored and served it, plus,
    when the prediction has them, its intervals and ``p_up`` under keys of their own."""
    current = prediction.based_on.close
    predicted = prediction.predicted_close
    change = predicted - current
    percent = change / current * 100
    arrow = "▲" if change >= 0 else "▼"
    return _distribution_view(prediction) | {
        "_id": prediction.event_id,
        "currentPrice": money(current),
        "predictedPrice": money(predicted),
        "priceChange": f"{arrow} {money(abs(change), current)} ({percent:.2f}%)",
        "trend": "Bullish" if change >= 0 else "Bearish",
        "timestamp": prediction.based_on.close_time.isoformat(),
        "timestamp_display": display_time(prediction.based_on.close_time),
        "raw_data": {
            "last_actual_close": current,
            "predicted_close": predicted,
            "change_dollars": change,
            "change_percent": percent,
        },
    }


def _distribution_view(prediction: Prediction) -> dict[str, Any]:
    low, high = prediction.interval_80, prediction.interval_95
    if low is None or high is None:
        return {}
    return {
        "interval80": {"lower": low.lower, "upper": low.upper},
        "interval95": {"lower": high.lower, "upper": high.upper},
        "probabilityUp": prediction.p_up,
    }


def verification_view(verification: Verification) -> dict[str, Any]:
    """``GET /verify/<coin>``. ``directionCorrect`` meant "within the tolerance band" in the
    original and keeps that meaning here; true direction is in the versioned API."""
    return {
        "_id": verification.event_id,
        "predictedPrice": verification.predicted_close,
        "predictionDate": verification.based_on_time.isoformat(),
        "actualPrice": verification.actual_close,
        "errorPercent": verification.error_pct,
        "profitSim": verification.predicted_close - verification.actual_close,
        "directionCorrect": verification.within_tolerance,
    }


def history_view(verifications_newest_first: list[Verification]) -> list[dict[str, Any]]:
    """``GET /history/<coin>``: oldest first, as the original's chart expects."""
    return [
        {
            key: view[key]
            for key in ("predictedPrice", "actualPrice", "errorPercent", "directionCorrect")
        }
        | {"date": view["predictionDate"]}
        for view in map(verification_view, reversed(verifications_newest_first))
    ]


def average_error(verifications: list[Verification]) -> float | None:
    if not verifications:
        return None
    return sum(v.error_pct for v in verifications) / len(verifications)
