"""Events as MongoDB documents: ``_id`` is the event id, times are BSON dates."""

from __future__ import annotations

from typing import Any, TypeVar

from cryptocast_common.events import EVENT_TYPES, Event

E = TypeVar("E", bound=Event)


def to_document(event: Event) -> dict[str, Any]:
    document = event.model_dump(mode="python")
    document["_id"] = document.pop("event_id")
    return document


def from_document(document: dict[str, Any]) -> Event:
    data = dict(document)
    data["event_id"] = data.pop("_id")
    return EVENT_TYPES[data["type"]].model_validate(data)


def from_documents(kind: type[E], documents: list[dict[str, Any]]) -> list[E]:
    """Documents of a collection that holds one kind of event, as that kind."""
    events = [from_document(document) for document in documents]
    if wrong := [e.event_id for e in events if not isinstance(e, kind)]:
        raise TypeError(f"expected {kind.__name__} documents, got others: {wrong[:3]}")
    return [e for e in events if isinstance(e, kind)]
