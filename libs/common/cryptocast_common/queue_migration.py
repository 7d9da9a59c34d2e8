"""Re-creating a durable queue whose arguments changed without losing its messages.

RabbitMQ refuses to redeclare a queue with other arguments (``PRECONDITION_FAILED``): a
classic queue left by a version before quorum queues, or a quorum queue declared with another
delivery limit. Instead of failing, the service moves the queue aside:

1. a holding queue ``<name>.migrating`` with the new arguments is bound like the old queue,
   so nothing published from now on is lost, and the old queue is unbound;
2. the old queue's messages are moved into the holding queue, and the old queue is deleted;
3. the queue is declared again with the new arguments, the holding queue's messages are moved
   into it, bindings are switched back, the rest is moved, and the holding queue is deleted.

Messages keep their order except those published during the two binding calls of step 3,
which may arrive twice (every consumer is idempotent). Replicas doing this at once cooperate:
every step tolerates another having done it already.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelClosed

log = logging.getLogger(__name__)
T = TypeVar("T")


async def redeclare_keeping_messages(
    connection: AbstractConnection,
    exchange: str,
    name: str,
    arguments: dict[str, Any],
    bindings: Sequence[str],
) -> int:
    """Re-create queue ``name`` with ``arguments``; returns how many messages were moved."""
    holding = f"{name}.migrating"

    async def on_channel(step: Callable[[AbstractChannel], Awaitable[T]]) -> T:
        # A channel error (another replica got there first) closes the channel: one each.
        channel = await connection.channel(publisher_confirms=True)
        try:
            return await step(channel)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def rebind(channel: AbstractChannel, queue: str, bind: bool) -> None:
        target = await channel.get_queue(queue, ensure=False)
        for key in bindings:
            if bind:
                await target.bind(exchange, key)
            else:
                await target.unbind(exchange, key)

    async def hold(channel: AbstractChannel) -> None:
        await channel.declare_queue(holding, durable=True, arguments=arguments)
        await rebind(channel, holding, bind=True)
        await rebind(channel, name, bind=False)

    async def delete_old(channel: AbstractChannel) -> None:
        await channel.queue_delete(name, if_empty=True)

    async def recreate(channel: AbstractChannel) -> None:
        await channel.declare_queue(name, durable=True, arguments=arguments)

    async def switch_back(channel: AbstractChannel) -> None:
        await rebind(channel, name, bind=True)
        await rebind(channel, holding, bind=False)

    async def delete_holding(channel: AbstractChannel) -> None:
        await channel.queue_delete(holding)

    log.warning(
        "queue %s exists with other arguments (an earlier version or other "
        "settings): re-creating it with %s and keeping its messages",
        name,
        arguments,
    )
    await on_channel(hold)
    moved = 0
    for _ in range(3):  # a message may still arrive through a binding the old version had
        moved += await on_channel(lambda channel: _move(channel, name, holding))
        with contextlib.suppress(ChannelClosed):  # not empty, or deleted by a replica
            await on_channel(delete_old)
            break
    await on_channel(recreate)
    moved += await on_channel(lambda channel: _move(channel, holding, name))
    await on_channel(switch_back)
    moved += await on_channel(lambda channel: _move(channel, holding, name))
    with contextlib.suppress(ChannelClosed):  # a replica deleted it already
        await on_channel(delete_holding)
    log.warning("queue %s re-created, %d messages kept", name, moved)
    return moved


async def _move(channel: AbstractChannel, source: str, target: str) -> int:
    """Move every message of ``source`` to ``target``, each confirmed before it is acked."""
    try:
        queue = await channel.declare_queue(source, passive=True)
    except ChannelClosed:
        return 0  # gone already
    moved = 0
    while (message := await queue.get(fail=False)) is not None:
        copy = aio_pika.Message(
            message.body,
            headers=message.headers,
            content_type=message.content_type,
            message_id=message.message_id,
            type=message.type,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await channel.default_exchange.publish(copy, routing_key=target)
        await message.ack()
        moved += 1
    return moved
