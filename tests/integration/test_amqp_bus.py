"""The bus contract against the real RabbitMQ, with dead letters read from ``<ns>.dead``."""

import asyncio

import aio_pika
import pytest

from cryptocast_common.amqp import QUEUE_HEADER, REASON_HEADER, AmqpBus
from cryptocast_common.events import Event
from cryptocast_common.settings import CommonSettings
from tests.factories import candle
from tests.integration.bus_contract import CONTRACT
from tests.waiting import eventually


@pytest.mark.parametrize("scenario", CONTRACT, ids=lambda f: f.__name__)
async def test_amqp_bus_contract(scenario, common: CommonSettings) -> None:  # type: ignore[no-untyped-def]
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    reader = await aio_pika.connect(common.amqp_url or "")
    channel = await reader.channel()
    dead_queue = await channel.declare_queue(common.dead_letter_queue, durable=True)
    reasons: list[str] = []

    async def dead_reasons() -> list[str]:
        while (message := await dead_queue.get(fail=False)) is not None:
            await message.ack()
            assert message.headers[QUEUE_HEADER] == common.queue_for("contract")
            reasons.append(str(message.headers[REASON_HEADER]))
        return reasons

    try:
        await scenario(bus, common.namespace, dead_reasons)
    finally:
        await bus.close()
        await reader.close()


async def test_messages_carry_the_amqp_metadata(common: CommonSettings) -> None:
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    connection = await aio_pika.connect(common.amqp_url or "")
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(common.exchange)
        queue = await channel.declare_queue(
            common.queue_for("contract"),
            durable=True,
            arguments={"x-dead-letter-exchange": common.dead_letter_exchange},
        )
        await queue.bind(exchange, "#")
        await bus.publish([candle(0)])
        message = await queue.get(timeout=10)
        await message.ack()
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == candle(0).event_id
        assert message.type == "candle"
        assert message.timestamp is not None
        assert message.routing_key == "candle.BTC.4h"
    finally:
        await bus.close()
        await connection.close()


async def test_close_lets_the_batch_in_hand_finish_and_be_acked(common: CommonSettings) -> None:
    """What SIGTERM does in every service: stop deliveries, finish, ack, disconnect."""
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    started, handled = asyncio.Event(), []

    async def slow(events: list[Event]) -> list[Event]:
        started.set()
        await asyncio.sleep(0.5)  # kept: a slow handler, so close() comes mid-batch
        handled.extend(events)
        return []

    await bus.consume(common.queue_for("contract"), ["candle.#"], slow, batch_size=10)
    await bus.publish([candle(i) for i in range(3)])
    await asyncio.wait_for(started.wait(), 10)
    await bus.close()  # while the handler is still sleeping
    assert len(handled) >= 1  # the batch in hand was finished, not dropped

    connection = await aio_pika.connect(common.amqp_url or "")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            common.queue_for("contract"), durable=True, passive=True
        )
        remaining = queue.declaration_result.message_count
        assert remaining == 3 - len(handled)  # acked ones are gone; the rest wait, none lost
    finally:
        await connection.close()


async def test_a_batch_acked_in_one_frame_leaves_nothing_unsettled(common: CommonSettings) -> None:
    """The consume loop acks each batch with one multiple ack: every message handled is gone
    from the queue once the consumer disconnects (an unacked one would be back), each was
    handled once, and the malformed ones among them were dead-lettered once."""
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    handled: list[str] = []

    async def collect(events: list[Event]) -> list[Event]:
        handled.extend(event.event_id for event in events)
        return []

    bad = {5, 18, 31}
    await bus.consume(common.queue_for("contract"), ["candle.#"], collect, batch_size=16)
    for i in range(40):
        if i in bad:
            await bus.publish_raw("candle.BTC.4h", b"not an event", f"bad-{i}")
        await bus.publish([candle(i)])
    try:
        await eventually(lambda: _at_least(handled, 40))
    finally:
        await bus.close()
    assert sorted(handled) == sorted({candle(i).event_id for i in range(40)})
    connection = await aio_pika.connect(common.amqp_url or "")
    try:
        channel = await connection.channel()
        left = await channel.declare_queue(common.queue_for("contract"), passive=True)
        dead = await channel.declare_queue(common.dead_letter_queue, passive=True)
        assert left.declaration_result.message_count == 0
        assert dead.declaration_result.message_count == len(bad)
    finally:
        await connection.close()


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count
