"""Announcing a newly registered version: always as a challenger, never as champion.

Which model serves is decided by the lifecycle policy, not by the trainer. The trainer
publishes one ``ModelChange`` per symbol (``model_change.<SYMBOL>.<interval>``) with kind
``registered`` and ``by`` trainer: a new version is available to run as a challenger;
inference replicas fetch it from the registry, check it and add it beside the champion.
``model_cards`` builds the version's ``ModelCard`` per symbol instead (what the trainer
published before the schema had the ``registered`` kind); a caller may pass any builder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event, ModelChange, ModelRef
from cryptocast_inference.distribution import MODEL_FILE, DistributionForecaster, DistributionParams

Builder = Callable[[DistributionForecaster, Sequence[str], str], Sequence[Event]]


def model_changes(
    forecaster: DistributionForecaster, symbols: Sequence[str], interval: str
) -> Sequence[Event]:
    pooled = forecaster.metadata["test_metrics"]["pooled"]
    model, intervals = pooled["model"], pooled["intervals"]
    reason = (
        f"trained and registered as a challenger; walk-forward on {model['n']} candles: "
        f"MAE ratio {model['mae_ratio']:.4f} vs no change (DM {model['dm']:+.2f}), "
        f"coverage {intervals['cov80']:.1%} (80%) / {intervals['cov95']:.1%} (95%)"
    )
    return [
        ModelChange(
            symbol=symbol,
            interval=interval,
            kind="registered",
            model=forecaster.model,
            by="trainer",
            reason=reason,
            decided_at=datetime.fromisoformat(forecaster.metadata["created_at"]),
        )
        for symbol in symbols
    ]


def model_cards(
    forecaster: DistributionForecaster, symbols: Sequence[str], interval: str
) -> Sequence[Event]:
    return forecaster.cards(symbols, interval)


async def announce_version(
    bus: Bus,
    files: Mapping[str, bytes],
    symbols: Sequence[str],
    interval: str,
    build: Builder = model_changes,
) -> list[Event]:
    """Publish the events announcing the version in ``files`` (its ``model.json``)."""
    body = json.loads(files[MODEL_FILE])
    forecaster = DistributionForecaster(
        DistributionParams.from_json(body["params"]),
        ModelRef(name=body["name"], version=body["version"]),
        body,
    )
    published = list(build(forecaster, symbols, interval))
    await bus.publish(published)
    return published
