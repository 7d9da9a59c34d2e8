"""Events as MongoDB documents: ``_id`` is the event id, times are BSON dates."""

from __future__ import annotations

from typing import Any

from cryptocast_common.events import EVENT_TYPES, Event


def to_document(event: Event) -> dict[str, Any]:
    document = event.model_dump(mode="python")
    document["_id"] = document.pop("event_id")
    return document


def from_document(document: dict[str, Any]) -> Event:
    data = dict(document)
    data["event_id"] = data.pop("_id")
    return EVENT_TYPES[data["type"]].model_validate(data)
