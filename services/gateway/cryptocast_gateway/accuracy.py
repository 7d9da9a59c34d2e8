"""Accuracy of verified predictions per model over rolling windows: the shared scorecard."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from cryptocast_common.events import Verification
from cryptocast_common.metrics import forecast_metrics
from cryptocast_common.scorecard import Scorecard, scorecard
from cryptocast_gateway.observability import AccuracyValues
from cryptocast_gateway.store import EventStore

Window = Literal["24h", "7d", "30d", "all"]
WINDOWS: dict[Window, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
MAX_VERIFICATIONS = 100_000
RESAMPLES = 400  # bootstrap resamples per request: an interval to two decimals, fast
RECENT_VERIFICATIONS = 100  # the accuracy gauges cover this many latest verdicts per symbol
GAUGED_METRICS = ("within_2pct", "mase", "directional_accuracy")


def _by_model(verifications: list[Verification]) -> dict[str, list[Verification]]:
    grouped: dict[str, list[Verification]] = defaultdict(list)
    for verification in verifications:
        grouped[str(verification.model)].append(verification)
    return dict(sorted(grouped.items()))


def by_model(verifications: list[Verification]) -> dict[str, Scorecard]:
    return {model: scorecard(group, RESAMPLES) for model, group in _by_model(verifications).items()}


async def accuracy(
    store: EventStore, symbol: str, interval: str, window: Window, now: datetime
) -> dict[str, Scorecard]:
    """Metrics per model over verifications whose target closed within ``window`` of now."""
    span = WINDOWS[window]
    found = await store.page(
        "verifications",
        symbol,
        interval,
        now - span if span else None,
        now,
        None,
        MAX_VERIFICATIONS,
    )
    return by_model(found)  # type: ignore[arg-type]  # the verifications collection


async def recent_accuracy(
    store: EventStore, symbols: Sequence[str], interval: str
) -> AccuracyValues:
    """The gauges' values: per symbol and model over the latest verdicts, one bounded read
    per symbol."""
    values: AccuracyValues = {}
    for symbol in symbols:
        recent = await store.verifications(symbol, interval, RECENT_VERIFICATIONS)
        for model, group in _by_model(recent).items():
            # The point metrics alone: a scrape needs no bootstrap or significance test.
            stats = forecast_metrics(
                [v.predicted_close for v in group],
                [v.actual_close for v in group],
                [v.based_on_close for v in group],
            )
            for metric in GAUGED_METRICS:
                value = stats[metric]  # type: ignore[literal-required]  # GAUGED_METRICS keys
                if value is not None:
                    values[symbol, model, metric] = value
    return values
