"""The RabbitMQ adapter of the ``Bus`` protocol (aio-pika).

Topology: one durable topic exchange ``<ns>.events``; each service's queue ``<ns>.<service>``
is a quorum queue with ``<ns>.dlx`` as its dead-letter exchange; ``<ns>.dlx`` routes every
key to the durable queue ``<ns>.dead``. A message is dead-lettered by publishing it to
``<ns>.dlx`` with the reason in the ``x-cryptocast-reason`` header and then acking it, so the
reason travels with it.

Deliveries are counted where no restart can lose them: the broker counts the deliveries of a
quorum queue message whose consumer went away without settling it (``x-delivery-count``),
and a message sent again carries the count so far in ``x-cryptocast-deliveries``. A retry
waits in a delay queue ``<queue>.retry.<ms>ms`` (one per backoff step, its TTL the delay)
that dead-letters back into the work queue, so the consumer goes on with other messages
meanwhile. A message the broker returned is moved to ``<queue>.returned``, consumed one
message at a time (see ``BatchConsumer``). The queues' delivery limits are the broker's
backstop should a consumer die before it can act on the count (``x-first-death-reason:
delivery_limit``).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from aiormq.abc import DeliveredMessage
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
BROKER_COUNT = "x-delivery-count"
MAX_IN_FLIGHT = 256
PUBLISH_WAIT_SECONDS = 30.0
# A confirm that never comes (a connection the broker blocks, a channel lost mid-publish)
# fails the publish rather than holding its handler for ever: the message is handled again,
# and its event id makes a second copy harmless.
CONFIRM_WAIT_SECONDS = 30.0


def isolation_queue(queue: str) -> str:
    return f"{queue}.returned"


def delay_queue(queue: str, delay_seconds: float) -> str:
    return f"{queue}.retry.{round(delay_seconds * 1000)}ms"


def retry_delays(settings: CommonSettings) -> list[float]:
    """One delay per retry a message can get, fewer where the cap makes them equal."""
    steps = range(1, settings.max_attempts)
    return sorted({retry_delay(settings.retry_delay_seconds, step) for step in steps})


class _AmqpDelivery:
    def __init__(
        self, bus: AmqpBus, queue: str, message: AbstractIncomingMessage, quorum: bool = True
    ) -> None:
        self._bus = bus
        self._queue = queue
        self._message = message
        self.body = message.body
        self.message_id = message.message_id
        self.content_type = message.content_type
        headers = message.headers or {}
        # The broker counts deliveries whose consumer went away without settling them, on
        # quorum queues only: elsewhere the header is whatever the publisher wrote.
        self.returned = count_header(headers.get(BROKER_COUNT)) if quorum else 0
        self.retried = count_header(headers.get(DELIVERIES_HEADER))

    @property
    def stale(self) -> bool:
        try:
            self._message.channel  # noqa: B018 (raises once the channel is gone)
        except ChannelInvalidStateError:
            return True
        return False

    async def ack(self, *, with_earlier: bool = False) -> None:
        await self._message.ack(multiple=with_earlier)

    def _copy(self, **headers: Any) -> aio_pika.Message:
        # The broker's count belongs to this delivery: the copy starts a count of its own.
        kept = {k: v for k, v in (self._message.headers or {}).items() if k != BROKER_COUNT}
        return aio_pika.Message(
            self.body,
            content_type=self._message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.message_id,
            type=self._message.type,
            timestamp=datetime.now(UTC),
            headers={**kept, **headers},
        )

    async def retry(self, deliveries: int) -> None:
        delay = retry_delay(self._bus.retry_delay_seconds, deliveries)
        await self._move(
            self._bus.default_exchange,
            delay_queue(self._queue, delay),
            self._copy(**{DELIVERIES_HEADER: deliveries}),
        )

    async def isolate(self, deliveries: int) -> None:
        await self._move(
            self._bus.default_exchange,
            isolation_queue(self._queue),
            self._copy(**{DELIVERIES_HEADER: deliveries}),
        )

    async def dead_letter(self, reason: str) -> None:
        await self._move(
            self._bus.dead_letter_exchange,
            self._message.routing_key or "",
            self._copy(**{REASON_HEADER: reason[:2000], QUEUE_HEADER: self._queue}),
        )

    async def _move(
        self, exchange: AbstractExchange, routing_key: str, copy: aio_pika.Message
    ) -> None:
        """Publish the copy, then ack; if the copy cannot be published, give the message
        back so that it is delivered again rather than held unsettled."""
        try:
            await self._bus.publishing_channel_open()
            confirmed = await exchange.publish(
                copy, routing_key=routing_key, mandatory=True, timeout=CONFIRM_WAIT_SECONDS
            )
            if isinstance(confirmed, DeliveredMessage):  # returned: no queue took the copy
                raise RuntimeError(f"no queue for {routing_key!r}: the message stays put")
        except Exception:
            with contextlib.suppress(Exception):
                await self._message.nack(requeue=True)
            raise
        await self._message.ack()


class AmqpBus:
    """Connect with ``await AmqpBus.connect(url, settings)``; nothing connects at import."""

    def __init__(self, connection: AbstractRobustConnection, settings: CommonSettings) -> None:
        self._connection = connection
        self._settings = settings
        self.retry_delay_seconds = settings.retry_delay_seconds
        self._channel: AbstractChannel
        self._exchange: AbstractExchange
        self.dead_letter_exchange: AbstractExchange
        self._consumers: list[tuple[BatchConsumer, AbstractQueue, str, AbstractChannel]] = []

    @classmethod
    async def connect(cls, url: str, settings: CommonSettings) -> AmqpBus:
        connection = await aio_pika.connect_robust(
            url, client_properties={"connection_name": f"cryptocast:{settings.namespace}"}
        )
        bus = cls(connection, settings)
        await bus._declare_topology()
        return bus

    async def _declare_topology(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.dead_letter_exchange = await self._channel.declare_exchange(
            self._settings.dead_letter_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead = await self._channel.declare_queue(self._settings.dead_letter_queue, durable=True)
        await dead.bind(self.dead_letter_exchange, "#")

    async def publishing_channel_open(self) -> None:
        """Wait (bounded) while the publishing channel reopens: after a reconnect the
        consumers' channels can be back, delivering, before it is."""
        async with asyncio.timeout(PUBLISH_WAIT_SECONDS):
            while self._channel.is_closed:  # noqa: ASYNC110 (aio-pika has no event for it)
                await asyncio.sleep(0.05)

    @property
    def default_exchange(self) -> AbstractExchange:
        """Looked up on each use: the channel makes a new one each time it reopens."""
        return self._channel.default_exchange

    async def publish(self, events: Sequence[Event]) -> None:
        """Publish with confirms, keeping up to MAX_IN_FLIGHT unconfirmed at once."""
        for start in range(0, len(events), MAX_IN_FLIGHT):
            chunk = events[start : start + MAX_IN_FLIGHT]
            await asyncio.gather(*(self._publish_one(event) for event in chunk))

    async def _publish_one(self, event: Event) -> None:
        await self.publish_raw(event.routing_key, event.to_json(), event.event_id, event.type)

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        message_id: str | None,
        event_type: str | None = None,
        *,
        content_type: str | None = "application/json",
        headers: dict[str, Any] | None = None,
    ) -> None:
        await self.publishing_channel_open()
        message = aio_pika.Message(
            body,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=event_type,
            timestamp=datetime.now(UTC),
            headers=headers,
        )
        await self._exchange.publish(message, routing_key=routing_key, timeout=CONFIRM_WAIT_SECONDS)

    def _quorum(self, **arguments: Any) -> dict[str, Any]:
        # At-least-once dead-lettering: the broker keeps a message until the dead-letter
        # queue has confirmed it (it needs reject-publish overflow).
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            **arguments,
        }

    async def _declare_durable(
        self, name: str, arguments: dict[str, Any], bindings: Sequence[str]
    ) -> None:
        """Declare on a channel of its own: refusing other arguments closes the channel."""
        probe = await self._connection.channel()
        try:
            await probe.declare_queue(name, durable=True, arguments=arguments)
        except ChannelPreconditionFailed:
            await redeclare_keeping_messages(
                self._connection, self._settings.exchange, name, arguments, bindings
            )
        finally:
            if not probe.is_closed:
                await probe.close()

    async def consume(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: Handler,
        *,
        batch_size: int = 1,
        exclusive: bool = False,
        single_active: bool = False,
    ) -> None:
        dead_letters = {"x-dead-letter-exchange": self._settings.dead_letter_exchange}
        if exclusive:  # quorum queues cannot be exclusive: this one is classic and goes away
            await self._consume(
                queue, bindings, handler, batch_size, exclusive=True, arguments=dead_letters
            )
        else:
            # The broker's limits are backstops for a consumer that dies before it can act
            # on the count: generous on the work queue, whose consumer holds many messages,
            # where returns are mostly not the message's doing; exact on isolation.
            limit = self._settings.max_attempts
            one_at_a_time = {"x-single-active-consumer": True} if single_active else {}
            work = self._quorum(**dead_letters, **{"x-delivery-limit": 4 * limit}, **one_at_a_time)
            isolation = self._quorum(**dead_letters, **{"x-delivery-limit": limit}, **one_at_a_time)
            await self._declare_durable(queue, work, bindings)
            await self._declare_durable(isolation_queue(queue), isolation, [])
            await self._consume(queue, bindings, handler, batch_size, arguments=work)
            await self._consume(
                isolation_queue(queue),
                [],
                handler,
                1,
                arguments=isolation,
                isolated=True,
                settles_for=queue,
            )
        for delay in retry_delays(self._settings):
            back: dict[str, Any] = {
                "x-message-ttl": round(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
            }
            if exclusive:
                await self._channel.declare_queue(
                    delay_queue(queue, delay), exclusive=True, arguments=back
                )
            else:
                await self._declare_durable(delay_queue(queue, delay), self._quorum(**back), [])

    async def _consume(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: Handler,
        batch_size: int,
        *,
        arguments: dict[str, Any],
        exclusive: bool = False,
        isolated: bool = False,
        settles_for: str | None = None,
    ) -> None:
        """One consumer on a channel of its own; ``settles_for`` is the work queue whose
        delay and isolation queues its retries go to."""
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(
            prefetch_count=batch_size if isolated else max(self._settings.prefetch, batch_size)
        )
        exchange = await channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        declared = await channel.declare_queue(
            queue,
            durable=not exclusive,
            exclusive=exclusive,
            auto_delete=exclusive,
            arguments=arguments,
        )
        for binding in bindings:
            await declared.bind(exchange, binding)
        inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        consumer = BatchConsumer(
            queue,
            inbox,
            handler,
            self.publish,
            batch_size=batch_size,
            max_attempts=self._settings.max_attempts,
            isolated=isolated,
        )
        consumer.start()
        work_queue = settles_for or queue

        async def receive(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(_AmqpDelivery(self, work_queue, message, quorum=not exclusive))

        tag = await declared.consume(receive)
        self._consumers.append((consumer, declared, tag, channel))

    async def close(self) -> None:
        """Stop deliveries, finish the batches in hand; unacked messages return to the queue."""
        for _, queue, tag, _ in self._consumers:
            try:
                await queue.cancel(tag)
            except Exception as exc:  # the broker is away: it returns the messages itself
                log.warning(
                    "could not cancel a consumer", extra={"queue": queue.name, "error": repr(exc)}
                )
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
