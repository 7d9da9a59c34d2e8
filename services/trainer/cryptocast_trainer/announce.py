"""Announcing a newly registered version: always as a challenger, never as champion.

Which model serves is decided by the lifecycle policy, not by the trainer. The event
schema belongs to ``cryptocast_common.events``: when its ``ModelChange`` gains a
``registered`` kind, that is what ``announce_version`` publishes; until then it publishes
the version's ``ModelCard`` per symbol (``model.<SYMBOL>.<interval>``), the event that
already describes a model and its held-out record. A ModelCard has no role field, so
"challenger" is carried by who sends it: inference's cards describe what serves, the
trainer's describe a version that is only registered. A caller may pass ``build`` to
publish any other event class.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping, Sequence

from cryptocast_common import events
from cryptocast_common.bus import Bus
from cryptocast_common.events import Event, ModelRef
from cryptocast_inference.distribution import MODEL_FILE, DistributionForecaster, DistributionParams

Builder = Callable[[DistributionForecaster, Sequence[str], str], Sequence[Event]]


def registered_kind_available() -> bool:
    change_kind = getattr(events, "ChangeKind", None)
    return change_kind is not None and "registered" in typing.get_args(change_kind)


def model_cards(
    forecaster: DistributionForecaster, symbols: Sequence[str], interval: str
) -> Sequence[Event]:
    return forecaster.cards(symbols, interval)


def model_changes(
    forecaster: DistributionForecaster, symbols: Sequence[str], interval: str
) -> Sequence[Event]:
    pooled = forecaster.metadata["test_metrics"]["pooled"]["model"]
    return [
        events.ModelChange(
            symbol=symbol,
            interval=interval,
            kind="registered",  # chosen only when the schema has this kind
            model=forecaster.model,
            by="policy",
            reason=f"trained and registered as a challenger; walk-forward MAE ratio "
            f"{pooled['mae_ratio']:.4f} (DM {pooled['dm']:+.2f})",
            decided_at=forecaster.metadata["created_at"],
        )
        for symbol in symbols
    ]


async def announce_version(
    bus: Bus,
    files: Mapping[str, bytes],
    symbols: Sequence[str],
    interval: str,
    build: Builder | None = None,
) -> list[Event]:
    """Publish the events announcing the version in ``files`` (its ``model.json``)."""
    body = json.loads(files[MODEL_FILE])
    forecaster = DistributionForecaster(
        DistributionParams.from_json(body["params"]),
        ModelRef(name=body["name"], version=body["version"]),
        body,
    )
    build = build or (model_changes if registered_kind_available() else model_cards)
    published = list(build(forecaster, symbols, interval))
    await bus.publish(published)
    return published
