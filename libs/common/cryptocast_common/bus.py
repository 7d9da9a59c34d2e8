"""The event bus: a protocol, the consume loop both implementations share, and an in-memory bus.

Semantics (identical for the in-memory bus and the RabbitMQ adapter in ``amqp.py``):

- ``publish`` routes each event by its routing key ``<type>.<SYMBOL>.<interval>`` to every
  queue with a matching binding pattern (``*`` matches one word, ``#`` zero or more).
- ``consume`` declares a named queue with its bindings; consumers of the same queue compete.
- A handler gets a batch of decoded events and returns the events to publish. The messages
  are acknowledged only after those events are published (confirmed) and the handler returned.
- A body that is not a valid event is dead-lettered at once with the reason. A failing
  handler makes its messages come back later (a delay that doubles, spent outside the
  consumer, so the rest of the queue keeps flowing) until ``max_attempts`` deliveries, then
  they are dead-lettered with the last error as the reason. Deliveries are counted by the
  broker and in a message header, so the count survives restarts and is shared by replicas;
  a message whose consumer keeps dying is dead-lettered after ``max_attempts`` deliveries too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptocast_common.events import Event, InvalidEvent, decode_event

log = logging.getLogger(__name__)

Handler = Callable[[list[Event]], Awaitable[Sequence[Event]]]
Publish = Callable[[Sequence[Event]], Awaitable[None]]


# Messages this process dead-lettered, by queue and kind: "invalid" (not an event this
# consumer knows), "failed" (the handler kept failing), "redelivered" (a consumer kept
# stopping while handling it).
DEAD_LETTERED: Counter[tuple[str, str]] = Counter()


class Bus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...

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
        """Declare ``queue`` bound to ``bindings`` and start feeding ``handler`` in the
        background; returns once the queue is ready to receive.

        A shared queue is durable and its consumers compete for messages; with
        ``single_active`` only one consumer at a time receives (the others take over if it
        goes), for decisions that must be taken in one place. An ``exclusive`` queue belongs
        to this connection and is deleted with it: give each replica its own name to have
        every replica see every message."""
        ...

    async def close(self) -> None:
        """Stop consuming, let in-flight batches finish, release connections."""
        ...

    async def ping(self) -> None:
        """Raise if the broker cannot be reached right now."""
        ...


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))


class Delivery(Protocol):
    """One received message, as the consume loop sees it."""

    body: bytes
    message_id: str | None
    content_type: str | None
    retried: int  # deliveries counted before this copy was sent again (see BatchConsumer)
    returned: int  # times the broker gave it back after its consumer went away unsettled

    @property
    def stale(self) -> bool:
        """True when it can no longer be settled (its channel is gone): the broker will
        deliver it again, so it is skipped."""
        ...

    async def ack(self, *, with_earlier: bool = False) -> None:
        """``with_earlier``: also every earlier delivery of this consumer not settled yet, in
        one frame; the consume loop acks a batch so, once everything before it is settled."""
        ...

    async def retry(self, deliveries: int) -> None:
        """Deliver it again later, without holding up the queue; ``deliveries`` so far."""
        ...

    async def isolate(self, deliveries: int) -> None:
        """Move it where it is handled on its own (see ``BatchConsumer``)."""
        ...

    async def dead_letter(self, reason: str) -> None: ...


RETRY_DELAY_CAP = 60.0
LOGGED_DEAD_LETTERS = 100  # per queue and kind: each of the first, then one in this many


def retry_delay(base: float, deliveries: int) -> float:
    """Wait before delivery ``deliveries + 1``: ``base``, doubling, capped."""
    return min(base * 2.0 ** (deliveries - 1), RETRY_DELAY_CAP)


def count_header(value: object) -> int:
    """A delivery counter from a message header; any other type (a header anyone could set)
    counts as zero."""
    return value if type(value) is int and value > 0 else 0


class BatchConsumer:
    """Takes deliveries from ``inbox`` in batches and applies the semantics above.

    The loop survives anything a batch can raise (the broker gone while a message is in hand
    included: the broker delivers it again), and ``start`` restarts it should it ever end
    otherwise, so a live process never stops reading.

    A message the broker returned after its consumer went away may have killed that
    consumer, but the broker charged a delivery to every message the consumer held. So a
    returned message is moved, charged one delivery, to an ``isolated`` consumer that holds
    one message at a time: there every return is its own doing, a message that keeps killing
    its consumer is dead-lettered after ``max_attempts`` deliveries in all, and the neighbours
    it took down with it are handled."""

    def __init__(
        self,
        queue: str,
        inbox: asyncio.Queue[Delivery],
        handler: Handler,
        publish: Publish,
        *,
        batch_size: int,
        max_attempts: int,
        isolated: bool = False,
    ) -> None:
        self.queue = queue
        self._isolated = isolated
        self.inbox = inbox
        self._handler = handler
        self._publish = publish
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._task: asyncio.Task[None] | None = None
        self._idle = True
        self._stopping = False

    @property
    def idle(self) -> bool:
        return self._idle

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consume:{self.queue}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task is not self._task or task.cancelled():
            return  # stopped on purpose, or cancelled with the event loop
        log.error(
            "consume loop ended unexpectedly, restarting it",
            exc_info=task.exception(),
            extra={"queue": self.queue},
        )
        self.start()

    async def stop(self) -> None:
        """Finish the batch in hand, then stop; undelivered messages stay in the inbox."""
        if self._task is None:
            return
        task = self._task
        self._stopping = True
        if self._idle:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._idle = True
            batch = [await self.inbox.get()]
            self._idle = False
            while len(batch) < self._batch_size and not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
            try:
                await self._process([d for d in batch if not d.stale])
            except Exception:
                log.exception(
                    "batch failed outside its handler; unsettled messages will be delivered again",
                    extra={"queue": self.queue},
                )

    async def _process(self, batch: list[Delivery]) -> None:
        events: list[Event] = []
        accepted: list[Delivery] = []
        set_aside: list[Awaitable[None]] = []  # moved or dead-lettered, all at once
        for delivery in batch:
            if delivery.returned and not self._isolated:
                set_aside.append(self._settle(delivery.isolate(delivery.retried + 1), delivery))
                continue
            delivered = self._delivered_before(delivery)
            if delivered >= self._max_attempts:
                set_aside.append(
                    self._dead_letter(
                        delivery,
                        "redelivered",
                        f"delivered {delivered} times without being "
                        "settled (its consumer stopped while handling it)",
                    )
                )
                continue
            try:
                events.append(decode_event(delivery.body, delivery.content_type))
                accepted.append(delivery)
            except InvalidEvent as exc:
                set_aside.append(self._dead_letter(delivery, "invalid", f"invalid event: {exc}"))
        await asyncio.gather(*set_aside)
        if not accepted:
            return
        try:
            produced = await self._handler(events)
            if produced:
                await self._publish(produced)
        except Exception as exc:
            if len(accepted) > 1:
                # Find the culprit: retry each message on its own so one bad event does not
                # take the innocent ones of its batch to the dead-letter queue with it.
                for delivery in accepted:
                    await self._process([delivery])
                return
            await self._failed(accepted[0], events[0], exc)
            return
        # Every earlier delivery is settled by now (batches are handled in turn, and this
        # one's set-aside messages were moved first), so one ack settles the batch: the
        # broker then does one settlement instead of one per message (a quarter of its CPU).
        last = accepted[-1]
        await self._settle(last.ack(with_earlier=True), last)

    def _delivered_before(self, delivery: Delivery) -> int:
        # Only an isolated consumer's returns are charged in full: it held nothing else.
        return delivery.retried + (delivery.returned if self._isolated else 0)

    async def _settle(self, settling: Awaitable[None], delivery: Delivery) -> None:
        """Ack, retry or dead-letter; if the broker has gone meanwhile, it delivers the
        message again once it is back, so losing this settlement loses nothing."""
        try:
            await settling
        except Exception as exc:
            log.warning(
                "could not settle a message, it will be delivered again",
                extra={"queue": self.queue, "message_id": delivery.message_id, "error": repr(exc)},
            )

    async def _dead_letter(self, delivery: Delivery, kind: str, reason: str) -> None:
        count = DEAD_LETTERED[self.queue, kind] = DEAD_LETTERED[self.queue, kind] + 1
        if count <= LOGGED_DEAD_LETTERS or count % LOGGED_DEAD_LETTERS == 0:
            # A flood of bad messages must not become a flood of log lines: every reason is
            # in the dead-letter queue's header, and the count in the metrics.
            log.warning(
                "dead-lettering a message",
                extra={
                    "queue": self.queue,
                    "message_id": delivery.message_id,
                    "reason": reason[:500],
                    "dead_lettered_so_far": count,
                },
            )
        await self._settle(delivery.dead_letter(reason), delivery)

    async def _failed(self, delivery: Delivery, event: Event, exc: Exception) -> None:
        deliveries = self._delivered_before(delivery) + 1
        log.warning(
            "handler failed",
            exc_info=exc,
            extra={"queue": self.queue, "event_id": event.event_id, "attempt": deliveries},
        )
        if deliveries >= self._max_attempts:
            await self._dead_letter(
                delivery, "failed", f"handler failed {deliveries} times: {exc!r}"
            )
            return
        await self._settle(delivery.retry(deliveries), delivery)


def check_consumers(consumers: Sequence[BatchConsumer]) -> None:
    for consumer in consumers:
        if not consumer.running:
            raise RuntimeError(f"the consume loop of {consumer.queue} is not running")


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    routing_key: str
    body: bytes
    reason: str


@dataclass
class _MemoryDelivery:
    bus: InMemoryBus
    queue: str
    routing_key: str
    body: bytes
    message_id: str | None
    content_type: str | None = "application/json"
    retried: int = 0
    returned: int = 0
    stale: bool = False

    async def ack(self, *, with_earlier: bool = False) -> None:
        return None

    async def retry(self, deliveries: int) -> None:
        self.bus._deliver_later(dataclasses.replace(self, retried=deliveries))

    async def isolate(self, deliveries: int) -> None:
        raise NotImplementedError("nothing is returned by a broker inside one process")

    async def dead_letter(self, reason: str) -> None:
        self.bus.dead_letters.append(DeadLetter(self.queue, self.routing_key, self.body, reason))


@dataclass
class _MemoryQueue:
    bindings: set[str]
    inbox: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)


class InMemoryBus:
    """The bus inside one process; messages travel as the same JSON bytes as on RabbitMQ."""

    def __init__(self, *, max_attempts: int = 5, retry_delay_seconds: float = 0.05) -> None:
        self._max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self._retries: set[asyncio.TimerHandle] = set()
        self._queues: dict[str, _MemoryQueue] = {}
        self._consumers: list[BatchConsumer] = []
        self.dead_letters: list[DeadLetter] = []

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish_raw(event.routing_key, event.to_json(), event.event_id)

    async def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        message_id: str | None,
        content_type: str | None = "application/json",
    ) -> None:
        """Publish bytes as they are (tests use it to send malformed messages)."""
        for name, queue in self._queues.items():
            if any(topic_matches(b, routing_key) for b in queue.bindings):
                queue.inbox.put_nowait(
                    _MemoryDelivery(self, name, routing_key, body, message_id, content_type)
                )

    async def consume(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: Handler,
        *,
        batch_size: int = 1,
        exclusive: bool = False,
        single_active: bool = False,  # one process: every consumer is the only one
    ) -> None:
        declared = self._queues.setdefault(queue, _MemoryQueue(set()))
        declared.bindings.update(bindings)
        consumer = BatchConsumer(
            queue,
            declared.inbox,
            handler,
            self.publish,
            batch_size=batch_size,
            max_attempts=self._max_attempts,
        )
        consumer.start()
        self._consumers.append(consumer)

    def _deliver_later(self, delivery: _MemoryDelivery) -> None:
        """A retry waits on a timer, as on RabbitMQ it waits in a delay queue."""

        def deliver() -> None:
            self._retries.discard(timer)
            self._queues[delivery.queue].inbox.put_nowait(delivery)

        delay = retry_delay(self.retry_delay_seconds, delivery.retried)
        timer = asyncio.get_running_loop().call_later(delay, deliver)
        self._retries.add(timer)

    async def drain(self) -> None:
        """Wait until every queue is empty, every retry delivered and every consumer idle
        (wrap in a timeout)."""
        while (  # noqa: ASYNC110  # polls state spread over queues, timers and consumers
            self._retries
            or any(not q.inbox.empty() for q in self._queues.values())
            or any(not c.idle for c in self._consumers)
        ):
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        for timer in self._retries:
            timer.cancel()
        self._retries.clear()
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()

    async def ping(self) -> None:
        """In this process the bus is always reachable; a consume loop may still be down."""
        check_consumers(self._consumers)
