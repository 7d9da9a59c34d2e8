"""The event bus: a protocol, the consume loop both implementations share, and an in-memory bus.

Semantics (identical for the in-memory bus and the RabbitMQ adapter in ``amqp.py``):

- ``publish`` routes each event by its routing key ``<type>.<SYMBOL>.<interval>`` to every
  queue with a matching binding pattern (``*`` matches one word, ``#`` zero or more).
- ``consume`` declares a named queue with its bindings; consumers of the same queue compete.
- A handler gets a batch of decoded events and returns the events to publish. The messages
  are acknowledged only after those events are published (confirmed) and the handler returned.
- A body that is not a valid event is dead-lettered at once with the reason. A failing
  handler makes its messages come back (after a short backoff) until ``max_attempts``
  deliveries, then they are dead-lettered with the last error as the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptocast_common.events import Event, InvalidEvent, decode_event

log = logging.getLogger(__name__)

Handler = Callable[[list[Event]], Awaitable[Sequence[Event]]]
Publish = Callable[[Sequence[Event]], Awaitable[None]]


DEAD_LETTERED: Counter[str] = Counter()  # messages this process dead-lettered, per queue


class Bus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None: ...

    async def consume(
        self, queue: str, bindings: Sequence[str], handler: Handler, *, batch_size: int = 1,
        exclusive: bool = False,
    ) -> None:
        """Declare ``queue`` bound to ``bindings`` and start feeding ``handler`` in the
        background; returns once the queue is ready to receive.

        A shared queue is durable and its consumers compete for messages. An ``exclusive``
        queue belongs to this connection and is deleted with it: give each replica its own
        name to have every replica see every message."""
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

    async def ack(self) -> None: ...

    async def retry(self) -> None: ...

    async def dead_letter(self, reason: str) -> None: ...


def retry_backoff(attempt: int) -> float:
    return min(0.1 * 2 ** (attempt - 1), 5.0)


def _attempt_key(delivery: Delivery, event: Event) -> str:
    return delivery.message_id or event.event_id


class BatchConsumer:
    """Takes deliveries from ``inbox`` in batches and applies the semantics above."""

    def __init__(
        self,
        queue: str,
        inbox: asyncio.Queue[Delivery],
        handler: Handler,
        publish: Publish,
        *,
        batch_size: int,
        max_attempts: int,
    ) -> None:
        self.queue = queue
        self.inbox = inbox
        self._handler = handler
        self._publish = publish
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._attempts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._idle = True
        self._stopping = False

    @property
    def idle(self) -> bool:
        return self._idle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consume:{self.queue}")

    async def stop(self) -> None:
        """Finish the batch in hand, then stop; undelivered messages stay in the inbox."""
        if self._task is None:
            return
        task, self._task = self._task, None
        if self._idle:
            task.cancel()
        else:
            self._stopping = True
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping:
            self._idle = True
            batch = [await self.inbox.get()]
            self._idle = False
            while len(batch) < self._batch_size and not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
            await self._process(batch)

    async def _process(self, batch: list[Delivery]) -> None:
        events: list[Event] = []
        accepted: list[Delivery] = []
        for delivery in batch:
            try:
                events.append(decode_event(delivery.body))
                accepted.append(delivery)
            except InvalidEvent as exc:
                log.warning(
                    "dead-lettering invalid message",
                    extra={"queue": self.queue, "message_id": delivery.message_id,
                           "reason": str(exc)},
                )
                await self._dead_letter(delivery, f"invalid event: {exc}")
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
        for delivery, event in zip(accepted, events, strict=True):
            self._attempts.pop(_attempt_key(delivery, event), None)
            await delivery.ack()

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        await delivery.dead_letter(reason)
        DEAD_LETTERED[self.queue] += 1

    async def _failed(self, delivery: Delivery, event: Event, exc: Exception) -> None:
        key = _attempt_key(delivery, event)
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        log.warning(
            "handler failed",
            exc_info=exc,
            extra={"queue": self.queue, "event_id": event.event_id, "attempt": attempt},
        )
        if attempt >= self._max_attempts:
            del self._attempts[key]
            await self._dead_letter(delivery, f"handler failed {attempt} times: {exc!r}")
            return
        await asyncio.sleep(retry_backoff(attempt))
        await delivery.retry()


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

    async def ack(self) -> None:
        return None

    async def retry(self) -> None:
        self.bus._queues[self.queue].inbox.put_nowait(self)

    async def dead_letter(self, reason: str) -> None:
        self.bus.dead_letters.append(DeadLetter(self.queue, self.routing_key, self.body, reason))


@dataclass
class _MemoryQueue:
    bindings: set[str]
    inbox: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)


class InMemoryBus:
    """The bus inside one process; messages travel as the same JSON bytes as on RabbitMQ."""

    def __init__(self, *, max_attempts: int = 5) -> None:
        self._max_attempts = max_attempts
        self._queues: dict[str, _MemoryQueue] = {}
        self._consumers: list[BatchConsumer] = []
        self.dead_letters: list[DeadLetter] = []

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish_raw(event.routing_key, event.to_json(), event.event_id)

    async def publish_raw(self, routing_key: str, body: bytes, message_id: str | None) -> None:
        """Publish bytes as they are (tests use it to send malformed messages)."""
        for name, queue in self._queues.items():
            if any(topic_matches(b, routing_key) for b in queue.bindings):
                queue.inbox.put_nowait(_MemoryDelivery(self, name, routing_key, body, message_id))

    async def consume(
        self, queue: str, bindings: Sequence[str], handler: Handler, *, batch_size: int = 1,
        exclusive: bool = False,
    ) -> None:
        declared = self._queues.setdefault(queue, _MemoryQueue(set()))
        declared.bindings.update(bindings)
        consumer = BatchConsumer(
            queue, declared.inbox, handler, self.publish,
            batch_size=batch_size, max_attempts=self._max_attempts,
        )
        consumer.start()
        self._consumers.append(consumer)

    async def drain(self) -> None:
        """Wait until every queue is empty and every consumer idle (wrap in a timeout)."""
        while any(not q.inbox.empty() for q in self._queues.values()) or any(  # noqa: ASYNC110
            not c.idle for c in self._consumers
        ):
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()

    async def ping(self) -> None:
        return None  # in this process: always reachable
