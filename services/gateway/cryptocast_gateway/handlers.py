"""Every event is persisted once (the replicas share that queue); every replica sees every
prediction on a queue of its own, to keep the latest per coin in memory."""

from __future__ import annotations

from collections.abc import Sequence

from cryptocast_common.events import Event, Prediction
from cryptocast_gateway.cache import LatestPredictions
from cryptocast_gateway.store import EventStore


async def persist(events: Sequence[Event], store: EventStore) -> list[Event]:
    """One bulk upsert per batch; the bus acks the batch only after it returns."""
    await store.upsert(events)
    return []


async def remember_latest(events: Sequence[Event], latest: LatestPredictions) -> list[Event]:
    for event in events:
        if isinstance(event, Prediction):
            latest.update(event)
    return []
