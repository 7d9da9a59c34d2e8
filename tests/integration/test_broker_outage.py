"""RabbitMQ goes away and comes back: the ingestor's candles wait and are all delivered."""

from __future__ import annotations

import asyncio

import aio_pika

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.settings import CommonSettings
from cryptocast_ingestor.publishing import publish_until_done
from tests.factories import candle
from tests.relay import Relay


async def test_candles_published_during_an_outage_arrive_when_the_broker_is_back(
    common: CommonSettings,
) -> None:
    relay = Relay(common.amqp_url or "")
    await relay.start()
    bus = await AmqpBus.connect(relay.url, common)
    reader = await aio_pika.connect(common.amqp_url or "")
    try:
        channel = await reader.channel()
        exchange = await channel.get_exchange(common.exchange)
        inbox = await channel.declare_queue(common.queue_for("contract"), durable=True)
        await inbox.bind(exchange, "candle.#")

        await relay.stop()  # the broker is gone
        candles = [candle(i) for i in range(20)]
        publishing = asyncio.create_task(publish_until_done(bus.publish, candles, asyncio.sleep))
        await asyncio.sleep(3)  # kept: the outage lasting is the point, not a poll
        assert not publishing.done()  # still trying, not crashed, not given up
        await relay.start()  # the broker is back
        await asyncio.wait_for(publishing, 60)

        received = []
        while len(received) < len(candles):
            message = await inbox.get(timeout=10)
            received.append(message.message_id)
            await message.ack()
        assert sorted(received) == sorted(c.event_id for c in candles)
    finally:
        await bus.close()
        await reader.close()
        await relay.stop()
