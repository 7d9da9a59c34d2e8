"""The gateway's WebSocket feed, ``/api/v1/stream``: predictions and verifications as the
gateway consumes them (``websockets`` library)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets
from pydantic import BaseModel

from cryptocast_client.models import Prediction, Verification

HEARTBEAT = {"type": "heartbeat"}


def stream_url(
    base_url: str, symbols: Iterable[str] | None = None, models: Literal["served", "all"] = "served"
) -> str:
    """``http://host:8000`` -> ``ws://host:8000/api/v1/stream?symbols=BTC,ETH&models=...``."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query: dict[str, str] = {"models": models}
    if symbols:
        query["symbols"] = ",".join(s.upper() for s in symbols)
    return urlunsplit((scheme, parts.netloc, parts.path + "/api/v1/stream", urlencode(query), ""))


def parse_message(raw: str | bytes) -> BaseModel | dict[str, Any]:
    """A ``Prediction`` or ``Verification``; anything else (the heartbeat, a type this
    client does not know yet) as the decoded JSON."""
    message = json.loads(raw)
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "prediction":
        return Prediction.model_validate(message)
    if kind == "verification":
        return Verification.model_validate(message)
    return message  # type: ignore[no-any-return]


async def stream(
    base_url: str,
    symbols: Iterable[str] | None = None,
    *,
    models: Literal["served", "all"] = "served",
    heartbeats: bool = False,
    open_timeout: float = 10.0,
) -> AsyncIterator[BaseModel | dict[str, Any]]:
    """Events as they arrive, until the server closes the connection (a client that falls
    256 messages behind, or one over a connection cap, is closed with 1013: reconnect and
    fill the gap from ``predictions()``). Heartbeats are skipped unless ``heartbeats``.
    Unknown symbols are refused at the handshake (``websockets.InvalidStatus``, HTTP 403)."""
    url = stream_url(base_url, symbols, models)
    async with websockets.connect(url, open_timeout=open_timeout) as socket:
        async for raw in socket:
            event = parse_message(raw)
            if event == HEARTBEAT and not heartbeats:
                continue
            yield event
