"""The RabbitMQ adapter of the ``Bus`` protocol (aio-pika).

Topology: one durable topic exchange ``<ns>.events``; each service's durable queue
``<ns>.<service>`` has ``<ns>.dlx`` as its dead-letter exchange; ``<ns>.dlx`` routes every
key to the durable queue ``<ns>.dead``. A message is dead-lettered by publishing it to
``<ns>.dlx`` with the reason in the ``x-cryptocast-reason`` header and then acking it, so the
reason travels with it (a plain reject would only say "rejected").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from cryptocast_common.bus import BatchConsumer, Delivery, Handler
from cryptocast_common.events import Event
from cryptocast_common.settings import CommonSettings

log = logging.getLogger(__name__)

REASON_HEADER = "x-cryptocast-reason"
QUEUE_HEADER = "x-cryptocast-queue"
MAX_IN_FLIGHT = 256


class _AmqpDelivery:
    def __init__(self, bus: AmqpBus, queue: str, message: AbstractIncomingMessage) -> None:
        self._bus = bus
        self._queue = queue
        self._message = message
        self.body = message.body
        self.message_id = message.message_id

    async def ack(self) -> None:
        await self._message.ack()

    async def retry(self) -> None:
        await self._message.nack(requeue=True)

    async def dead_letter(self, reason: str) -> None:
        headers = dict(self._message.headers or {})
        headers.update({REASON_HEADER: reason[:2000], QUEUE_HEADER: self._queue})
        copy = aio_pika.Message(
            self.body,
            content_type=self._message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.message_id,
            type=self._message.type,
            timestamp=datetime.now(UTC),
            headers=headers,
        )
        routing_key = self._message.routing_key or ""
        await self._bus.dead_letter_exchange.publish(copy, routing_key=routing_key)
        await self._message.ack()


class AmqpBus:
    """Connect with ``await AmqpBus.connect(url, settings)``; nothing connects at import."""

    def __init__(self, connection: AbstractRobustConnection, settings: CommonSettings) -> None:
        self._connection = connection
        self._settings = settings
        self._channel: AbstractChannel
        self._exchange: AbstractExchange
        self.dead_letter_exchange: AbstractExchange
        self._consumers: list[tuple[BatchConsumer, AbstractQueue, str, AbstractChannel]] = []

    @classmethod
    async def connect(cls, url: str, settings: CommonSettings) -> AmqpBus:
        connection = await aio_pika.connect_robust(url, client_properties={
            "connection_name": f"cryptocast:{settings.namespace}"})
        bus = cls(connection, settings)
        await bus._declare_topology()
        return bus

    async def _declare_topology(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        self.dead_letter_exchange = await self._channel.declare_exchange(
            self._settings.dead_letter_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        dead = await self._channel.declare_queue(self._settings.dead_letter_queue, durable=True)
        await dead.bind(self.dead_letter_exchange, "#")

    async def publish(self, events: Sequence[Event]) -> None:
        """Publish with confirms, keeping up to MAX_IN_FLIGHT unconfirmed at once."""
        for start in range(0, len(events), MAX_IN_FLIGHT):
            chunk = events[start : start + MAX_IN_FLIGHT]
            await asyncio.gather(*(self._publish_one(event) for event in chunk))

    async def _publish_one(self, event: Event) -> None:
        await self.publish_raw(event.routing_key, event.to_json(), event.event_id, event.type)

    async def publish_raw(
        self, routing_key: str, body: bytes, message_id: str | None, event_type: str | None = None
    ) -> None:
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=event_type,
            timestamp=datetime.now(UTC),
        )
        await self._exchange.publish(message, routing_key=routing_key)

    async def consume(
        self, queue: str, bindings: Sequence[str], handler: Handler, *, batch_size: int = 1,
        exclusive: bool = False,
    ) -> None:
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=max(self._settings.prefetch, batch_size))
        exchange = await channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        declared = await channel.declare_queue(
            queue, durable=not exclusive, exclusive=exclusive, auto_delete=exclusive,
            arguments={"x-dead-letter-exchange": self._settings.dead_letter_exchange})
        for binding in bindings:
            await declared.bind(exchange, binding)
        inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        consumer = BatchConsumer(queue, inbox, handler, self.publish,
                                 batch_size=batch_size, max_attempts=self._settings.max_attempts)
        consumer.start()

        async def receive(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(_AmqpDelivery(self, queue, message))

        tag = await declared.consume(receive)
        self._consumers.append((consumer, declared, tag, channel))

    async def close(self) -> None:
        """Stop deliveries, finish the batches in hand; unacked messages return to the queue."""
        for _, queue, tag, _ in self._consumers:
            await queue.cancel(tag)
        for consumer, _, _, channel in self._consumers:
            await consumer.stop()
            await channel.close()
        self._consumers.clear()
        await self._connection.close()

    async def ping(self) -> None:
        if self._connection.is_closed:
            raise ConnectionError("not connected to RabbitMQ (reconnecting)")
