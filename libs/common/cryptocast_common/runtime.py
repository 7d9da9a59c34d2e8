"""Process plumbing every service shares: choosing the bus, running until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.bus import Bus, InMemoryBus
from cryptocast_common.health import HealthServer
from cryptocast_common.logging import configure_logging
from cryptocast_common.settings import CommonSettings

log = logging.getLogger(__name__)
CLOSE_SECONDS = 15.0


class ConfigurationError(RuntimeError):
    """The service cannot start as configured; the message says what to change."""


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def check_ready(self) -> None:
        """Raise if a dependency (broker, database) cannot be reached."""
        ...

    async def stop(self) -> None: ...


@dataclass
class Resources:
    """What a service opened and closes when it stops, newest first: the bus only if the
    service connected it itself (tests and ``cryptocast-up`` share one), clients it made."""

    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def own(self, close: Callable[[], Awaitable[None]]) -> None:
        self.closers.append(close)

    async def bus(self, settings: CommonSettings, given: Bus | None) -> Bus:
        """``given``, or a bus of the service's own, closed with its other resources."""
        if given is not None:
            return given
        bus = await connect_bus(settings)
        self.own(bus.close)
        return bus

    def database(self, settings: CommonSettings) -> AsyncDatabase[dict[str, Any]]:
        """The configured MongoDB database, on a client closed with the other resources."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, tz_aware=True
        )
        self.own(client.close)
        return client[settings.mongo_db]

    async def close(self) -> None:
        """Each gets ``CLOSE_SECONDS``: a broker or database that stopped answering must not
        hold the service's stop for ever. What it left open ends with the process, and a
        message it held unsettled is delivered again."""
        while self.closers:
            close = self.closers.pop()
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await close()
            except TimeoutError:
                log.warning(
                    "a resource did not close in time; left open",
                    extra={"resource": getattr(close, "__qualname__", repr(close))},
                )


class Indexed(Protocol):
    async def ensure_indexes(self) -> None: ...


IndexedStore = TypeVar("IndexedStore", bound=Indexed)


async def indexed(store: IndexedStore) -> IndexedStore:
    """``store`` once its indexes exist (idempotent: every start ensures them)."""
    await store.ensure_indexes()
    return store


async def cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks still running and wait until they have ended; a task that ended
    before is left alone (its outcome was handled, or is, where it ran)."""
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def connect_bus(settings: CommonSettings) -> Bus:
    if settings.amqp_url:
        return await AmqpBus.connect(settings.amqp_url, settings)
    log.warning(
        "CRYPTOCAST_AMQP_URL is not set: using the in-memory bus, which only reaches "
        "services in this same process"
    )
    return InMemoryBus(
        max_attempts=settings.max_attempts, retry_delay_seconds=settings.retry_delay_seconds
    )


async def serve_until_signalled(services: Sequence[Service]) -> None:
    """Start services in order, wait for SIGTERM/SIGINT, stop them in reverse order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
            log.info("service started", extra={"service": service.name})
        await stop.wait()
        log.info("stop signal received, shutting down")
    finally:
        for service in reversed(started):
            await service.stop()
            log.info("service stopped", extra={"service": service.name})


def run_service(build: Callable[[], Awaitable[Service]]) -> None:
    """Entry point body of ``python -m cryptocast_<service>``."""
    settings = CommonSettings()
    configure_logging(settings.log_level)

    async def main() -> None:
        service = await build()
        health = None
        if settings.health_port is not None:
            health = HealthServer(settings.health_host, settings.health_port, service.check_ready)
            await health.start()
        try:
            await serve_until_signalled([service])
        finally:
            if health:
                await health.stop()

    exit_on_configuration_error(lambda: run_loop(main()))


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, on uvloop where it is installed (it is, with the gateway's uvicorn)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def exit_on_configuration_error(run: Callable[[], None]) -> None:
    """Run; a configuration error ends the process with its message and status 2."""
    try:
        run()
    except ConfigurationError as error:
        log.critical("cannot start: %s", error)
        sys.exit(2)
