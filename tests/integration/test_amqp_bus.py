"""The bus contract against the real RabbitMQ, with dead letters read from ``<ns>.dead``."""

import aio_pika
import pytest

from cryptocast_common.amqp import QUEUE_HEADER, REASON_HEADER, AmqpBus
from cryptocast_common.settings import CommonSettings
from tests.integration.bus_contract import CONTRACT


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
    from tests.factories import candle

    bus = await AmqpBus.connect(common.amqp_url or "", common)
    connection = await aio_pika.connect(common.amqp_url or "")
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(common.exchange)
        queue = await channel.declare_queue(common.queue_for("contract"), durable=True,
                                            arguments={"x-dead-letter-exchange":
                                                       common.dead_letter_exchange})
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
