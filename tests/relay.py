"""A TCP relay between a client and RabbitMQ that plays an outage: stopping it cuts every
connection and refuses new ones, as a restarting broker would."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from cryptocast.embedded_mongo import free_port


class Relay:
    """Forwards connections to the broker at ``amqp_url``; connect through ``url``."""

    def __init__(self, amqp_url: str) -> None:
        self._direct = urlsplit(amqp_url)
        self.target = (self._direct.hostname or "127.0.0.1", self._direct.port or 5672)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        netloc = f"{self._direct.username}:{self._direct.password}@127.0.0.1:{self.port}"
        return urlunsplit(self._direct._replace(netloc=netloc))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Cut at once, as a crash does: nothing waits for either side to read what was
        in flight (a peer that stopped reading held a graceful close, and the test, for ever)."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        await self.server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        if self.server is None or not self.server.is_serving():  # stopped meanwhile
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self.writers |= {writer, upstream_writer}
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
            sink.close()  # the other side's end: once it has read the rest
