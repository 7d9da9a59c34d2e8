"""RabbitMQ goes away and comes back: the ingestor's candles wait and are all delivered.

A TCP relay between the bus and the broker plays the outage: closing it cuts every
connection and refuses new ones, as a restarting broker would.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import aio_pika

from cryptocast.embedded_mongo import free_port
from cryptocast_common.amqp import AmqpBus
from cryptocast_common.settings import CommonSettings
from cryptocast_ingestor.handlers import publish_until_done
from tests.factories import candle


class Relay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        await self.server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()
            with contextlib.suppress(Exception):
                await sink.wait_closed()


async def test_candles_published_during_an_outage_arrive_when_the_broker_is_back(
        common: CommonSettings) -> None:
    direct = urlsplit(common.amqp_url or "")
    relay = Relay(direct.hostname or "127.0.0.1", direct.port or 5672)
    await relay.start()
    via_relay = urlunsplit(direct._replace(netloc=f"{direct.username}:{direct.password}"
                                                  f"@127.0.0.1:{relay.port}"))
    bus = await AmqpBus.connect(via_relay, common)
    reader = await aio_pika.connect(common.amqp_url or "")
    try:
        channel = await reader.channel()
        exchange = await channel.get_exchange(common.exchange)
        inbox = await channel.declare_queue(common.queue_for("contract"), durable=True)
        await inbox.bind(exchange, "candle.#")

        await relay.stop()  # the broker is gone
        candles = [candle(i) for i in range(20)]
        publishing = asyncio.create_task(publish_until_done(bus.publish, candles,
                                                            asyncio.sleep))
        await asyncio.sleep(3)
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
