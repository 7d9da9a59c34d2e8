"""The RabbitMQ adapter of the ``Bus`` protocol (aio-pika).

Topology: one durable topic exchange ``<ns>.events``; each service's queue ``<ns>.<service>``
is a quorum queue with a delivery limit (``max_attempts`` deliveries, counted by the broker
across restarts and replicas) and ``<ns>.dlx`` as its dead-letter exchange; ``<ns>.dlx``
routes every key to the durable queue ``<ns>.dead``. A message is dead-lettered by
publishing it to ``<ns>.dlx`` with the reason in the ``x-cryptocast-reason`` header and then
acking it, so the reason travels with it; the broker itself dead-letters a message whose
consumers died ``max_attempts`` times while holding it (``x-first-death-reason:
delivery_limit``).

A retry waits in a delay queue ``<queue>.retry.<ms>ms`` (one per backoff step, its TTL the
delay) that dead-letters back into the work queue, so the consumer goes on with other
messages meanwhile; the delivery count so far travels in ``x-cryptocast-deliveries``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError
from aiormq.exceptions import ChannelPreconditionFailed

from cryptocast_common.bus import (
    BatchConsumer,
    Delivery,
    Handler,
    check_consumers,
    count_header,
    retry_delay,
)
from cryptocast_common.events import Event
from cryptocast_common.queue_migration import redeclare_keeping_messages
from cryptocast_common.settings import CommonSettings

log = logging.getLogger(__name__)

REASON_HEADER = "x-cryptocast-reason"
QUEUE_HEADER = "x-cryptocast-queue"
DELIVERIES_HEADER = "x-cryptocast-deliveries"
MAX_IN_FLIGHT = 256


def delay_queue(queue: str, delay_seconds: float) -> str:
    return f"{queue}.retry.{round(delay_seconds * 1000)}ms"


def retry_delays(settings: CommonSettings) -> list[float]:
    """One delay per retry a message can get, fewer where the cap makes them equal."""
    steps = range(1, settings.max_attempts)
    return sorted({retry_delay(settings.retry_delay_seconds, step) for step in steps})


class _AmqpDelivery:
    def __init__(self, bus: AmqpBus, queue: str, message: AbstractIncomingMessage) -> None:
        self._bus = bus
        self._queue = queue
        self._message = message
        self.body = message.body
        self.message_id = message.message_id
        self.content_type = message.content_type
        headers = message.headers or {}
        # Retries sent through a delay queue, plus the broker's count of deliveries whose
        # consumer went away without settling them (quorum queues only).
        self.previous_deliveries = (count_header(headers.get(DELIVERIES_HEADER))
                                    + count_header(headers.get("x-delivery-count")))

    @property
    def stale(self) -> bool:
        try:
            self._message.channel  # noqa: B018 (raises once the channel is gone)
        except ChannelInvalidStateError:
            return True
        return False

    async def ack(self) -> None:
        await self._message.ack()

    def _copy(self, **headers: Any) -> aio_pika.Message:
        return aio_pika.Message(
            self.body,
            content_type=self._message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.message_id,
            type=self._message.type,
            timestamp=datetime.now(UTC),
            headers={**(self._message.headers or {}), **headers},
        )

    async def retry(self, deliveries: int) -> None:
        delay = retry_delay(self._bus.retry_delay_seconds, deliveries)
        await self._bus.default_exchange.publish(
            self._copy(**{DELIVERIES_HEADER: deliveries}),
            routing_key=delay_queue(self._queue, delay))
        await self._message.ack()

    async def dead_letter(self, reason: str) -> None:
        copy = self._copy(**{REASON_HEADER: reason[:2000], QUEUE_HEADER: self._queue})
        await self._bus.dead_letter_exchange.publish(copy,
                                                     routing_key=self._message.routing_key or "")
        await self._message.ack()


class AmqpBus:
    """Connect with ``await AmqpBus.connect(url, settings)``; nothing connects at import."""

    def __init__(self, connection: AbstractRobustConnection, settings: CommonSettings) -> None:
        self._connection = connection
        self._settings = settings
        self.retry_delay_seconds = settings.retry_delay_seconds
        self._channel: AbstractChannel
        self._exchange: AbstractExchange
        self.default_exchange: AbstractExchange
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
        self.default_exchange = self._channel.default_exchange
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
        self, routing_key: str, body: bytes, message_id: str | None, event_type: str | None = None,
        *, content_type: str | None = "application/json", headers: dict[str, Any] | None = None,
    ) -> None:
        message = aio_pika.Message(
            body,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=event_type,
            timestamp=datetime.now(UTC),
            headers=headers,
        )
        await self._exchange.publish(message, routing_key=routing_key)

    def _quorum(self, **arguments: Any) -> dict[str, Any]:
        # At-least-once dead-lettering: the broker keeps a message until the dead-letter
        # queue has confirmed it (it needs reject-publish overflow).
        return {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish", **arguments}

    async def _declare_durable(self, name: str, arguments: dict[str, Any],
                               bindings: Sequence[str]) -> None:
        """Declare on a channel of its own: refusing other arguments closes the channel."""
        probe = await self._connection.channel()
        try:
            await probe.declare_queue(name, durable=True, arguments=arguments)
        except ChannelPreconditionFailed:
            await redeclare_keeping_messages(self._connection, self._settings.exchange, name,
                                             arguments, bindings)
        finally:
            if not probe.is_closed:
                await probe.close()

    async def consume(
        self, queue: str, bindings: Sequence[str], handler: Handler, *, batch_size: int = 1,
        exclusive: bool = False,
    ) -> None:
        if exclusive:  # quorum queues cannot be exclusive: this one is classic and goes away
            arguments: dict[str, Any] = {
                "x-dead-letter-exchange": self._settings.dead_letter_exchange}
        else:
            arguments = self._quorum(**{
                "x-delivery-limit": self._settings.max_attempts - 1,
                "x-dead-letter-exchange": self._settings.dead_letter_exchange})
            await self._declare_durable(queue, arguments, bindings)
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=max(self._settings.prefetch, batch_size))
        exchange = await channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        declared = await channel.declare_queue(
            queue, durable=not exclusive, exclusive=exclusive, auto_delete=exclusive,
            arguments=arguments)
        for binding in bindings:
            await declared.bind(exchange, binding)
        for delay in retry_delays(self._settings):
            back = {"x-message-ttl": round(delay * 1000), "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue}
            if exclusive:
                await channel.declare_queue(delay_queue(queue, delay), exclusive=True,
                                            arguments=back)
            else:
                await self._declare_durable(delay_queue(queue, delay), self._quorum(**back), [])
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
            try:
                await queue.cancel(tag)
            except Exception as exc:  # the broker is away: it returns the messages itself
                log.warning("could not cancel a consumer", extra={"queue": queue.name,
                                                                  "error": repr(exc)})
        for consumer, _, _, channel in self._consumers:
            await consumer.stop()
            if not channel.is_closed:
                await channel.close()
        self._consumers.clear()
        await self._connection.close()

    async def ping(self) -> None:
        """Ready means connected, with every consume loop running on an open channel."""
        if not self._connection.connected.is_set():
            raise ConnectionError("RabbitMQ is unreachable (reconnecting)")
        check_consumers([consumer for consumer, *_ in self._consumers])
        for _, queue, _, channel in self._consumers:
            if channel.is_closed:
                raise ConnectionError(f"the channel of {queue.name} is closed (reopening)")
