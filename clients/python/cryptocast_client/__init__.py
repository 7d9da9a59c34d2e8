"""Typed client for the CryptoCast gateway: the versioned REST API (``CryptoCastClient``),
its WebSocket stream (``stream``) and the RabbitMQ events (``subscribe``)."""

from cryptocast_client.client import OPERATIONS, CryptoCastClient, CryptoCastError
from cryptocast_client.events import EventParser, ReceivedEvent, channels, subscribe
from cryptocast_client.stream import stream, stream_url

__all__ = [
    "OPERATIONS",
    "CryptoCastClient",
    "CryptoCastError",
    "EventParser",
    "ReceivedEvent",
    "channels",
    "stream",
    "stream_url",
    "subscribe",
]
