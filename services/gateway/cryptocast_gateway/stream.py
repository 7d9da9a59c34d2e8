"""The live feed behind ``/api/v1/stream``: predictions and verifications as they arrive.

The consumer hands each event to every interested client's bounded queue without waiting;
a client whose queue is full has fallen behind and is disconnected (close code 1013, "try
again later"), so one slow or dead client never slows the consumer or the others. Clients
are capped per replica and per client address; one past a cap is refused with 1013 too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect

from cryptocast_common.events import Event, Prediction, Verification
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.store import SERVED_ROLES

TRY_AGAIN_LATER = 1013  # RFC 6455: a client that fell behind, or one past a cap
STREAMED = (Prediction, Verification)


@dataclass(eq=False)
class Subscriber:
    symbols: frozenset[str] | None  # None: every symbol
    queue: asyncio.Queue[bytes]
    every_model: bool = False  # False: only what is served (the champion's)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: Event) -> bool:
        if self.symbols is not None and event.symbol not in self.symbols:
            return False
        return self.every_model or getattr(event, "role", None) in SERVED_ROLES


class StreamHub:
    def __init__(
        self,
        metrics: GatewayMetrics,
        queue_size: int,
        heartbeat_seconds: float,
        max_clients: int,
        max_clients_per_address: int,
    ):
        self.metrics, self.queue_size = metrics, queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self.max_clients, self.max_clients_per_address = max_clients, max_clients_per_address
        self.subscribers: set[Subscriber] = set()
        self.per_address: Counter[str] = Counter()

    def _refusal(self, address: str) -> str | None:
        if len(self.subscribers) >= self.max_clients:
            return f"server busy: {self.max_clients} stream clients already"
        if self.per_address[address] >= self.max_clients_per_address:
            return f"{self.max_clients_per_address} streams from this address already"
        return None

    def publish(self, events: Sequence[Event]) -> None:
        """Called by the consumer: never blocks."""
        for event in events:
            if not isinstance(event, STREAMED):
                continue
            message = event.to_json()
            for subscriber in list(self.subscribers):
                if not subscriber.wants(event) or subscriber.dropped.is_set():
                    continue
                try:
                    subscriber.queue.put_nowait(message)
                except asyncio.QueueFull:
                    subscriber.dropped.set()
                    self.metrics.stream_dropped.inc()

    async def serve(
        self, websocket: WebSocket, symbols: frozenset[str] | None, every_model: bool = False
    ) -> None:
        address = websocket.client.host if websocket.client else "unknown"
        refusal = self._refusal(address)
        await websocket.accept()  # a close code reaches the client only once accepted
        if refusal is not None:
            self.metrics.stream_refused.inc()
            await websocket.close(TRY_AGAIN_LATER, refusal)
            return
        subscriber = Subscriber(symbols, asyncio.Queue(self.queue_size), every_model)
        self.subscribers.add(subscriber)
        self.per_address[address] += 1
        self.metrics.stream_clients.inc()
        sender = asyncio.create_task(self._send(websocket, subscriber))
        receiver = asyncio.create_task(self._receive(websocket))
        dropped = asyncio.create_task(subscriber.dropped.wait())
        try:
            await asyncio.wait({sender, receiver, dropped}, return_when=asyncio.FIRST_COMPLETED)
            if dropped.done():
                with contextlib.suppress(Exception):  # it may be gone already
                    await asyncio.wait_for(
                        websocket.close(TRY_AGAIN_LATER, "client fell behind the stream"), 5
                    )
        finally:
            for task in (sender, receiver, dropped):
                task.cancel()
            await asyncio.gather(sender, receiver, dropped, return_exceptions=True)
            self.subscribers.discard(subscriber)
            self.per_address[address] -= 1
            if not self.per_address[address]:
                del self.per_address[address]
            self.metrics.stream_clients.dec()

    async def _send(self, websocket: WebSocket, subscriber: Subscriber) -> None:
        while True:
            try:
                message = await asyncio.wait_for(subscriber.queue.get(), self.heartbeat_seconds)
            except TimeoutError:
                await websocket.send_text('{"type":"heartbeat"}')
                continue
            await websocket.send_text(message.decode())

    async def _receive(self, websocket: WebSocket) -> None:
        """Drain what the client sends; returns when it disconnects."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()
