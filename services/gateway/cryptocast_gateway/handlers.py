"""Every consumed event is persisted; predictions also refresh the in-memory latest."""

from __future__ import annotations

from collections.abc import Sequence

from cryptocast_common.events import Event, Prediction
from cryptocast_gateway.cache import LatestPredictions
from cryptocast_gateway.store import EventStore


async def persist(
    events: Sequence[Event], store: EventStore, latest: LatestPredictions
) -> list[Event]:
    """One bulk upsert per batch; the bus acks the batch only after it returns."""
    await store.upsert(events)
    for event in events:
        if isinstance(event, Prediction):
            latest.update(event)
    return []
