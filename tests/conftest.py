"""Fixtures for every tier. Integration and e2e tests need RabbitMQ on 127.0.0.1:5672
(``make test`` starts it) and run nx-27017, the SQLite-backed Mongo wire server, themselves.
A missing broker fails those tests with a clear message; it never skips them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from cryptocast.embedded_mongo import EmbeddedMongo
from cryptocast_common.amqp import delay_queue, isolation_queue, retry_delays
from cryptocast_common.settings import CommonSettings
from tests.watchdog import watchdog

__all__ = ["watchdog"]


@pytest.fixture(autouse=True)
def watched(request: pytest.FixtureRequest) -> None:
    """Every async test runs under the watchdog."""
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue(watchdog.__name__)


AMQP_URL = os.environ.get("CRYPTOCAST_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVICE_QUEUES = (
    "ingestor",
    "gateway",
    "gateway.alerts",
    "gateway.notify",
    "inference",
    "verifier",
    "verifier.lifecycle",
    "dead",
    "contract",
    "contract-b",
)
# Inference has a queue per series: these symbols cover every test's.
TEST_SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "ZZA", "ZZB", "ZZR")
CLEAN_UP_SECONDS = 60


class FailuresAtOnce:
    """Prints each failure when it happens, not only in the summary at the end: a run cut
    short (a hang, CI's time limit) still shows what failed first. The very end, all that
    a CI log may keep, repeats each failure's error in full (the short summary cuts it to
    the terminal's width)."""

    def __init__(self, terminal: pytest.TerminalReporter) -> None:
        self.terminal = terminal
        self.errors: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.terminal.write_line("")
            self.terminal.write_sep("!", f"{report.nodeid} failed ({report.when})")
            self.terminal.write_line(report.longreprtext)
            crash = getattr(report.longrepr, "reprcrash", None)
            error = crash.message if crash else report.longreprtext.strip().rsplit("\n", 1)[-1]
            self.errors.append(f"{report.nodeid} ({report.when}): {error}")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self) -> None:
        if self.errors:
            self.terminal.write_sep("!", "failed, in full")
            for error in self.errors:
                self.terminal.write_line(error)


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        config.pluginmanager.register(FailuresAtOnce(terminal), "failures-at-once")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongo"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongo_url(mongo_server: EmbeddedMongo) -> str:
    return mongo_server.url


@pytest.fixture
async def amqp_url() -> str:
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
    except Exception as exc:
        pytest.fail(
            f"RabbitMQ is not reachable at {AMQP_URL} ({exc!r}). Start it "
            "(`rabbitmq-server -detached`) or run `make test`, which starts it."
        )
    await connection.close()
    return AMQP_URL


@pytest.fixture
async def common(amqp_url: str, mongo_url: str) -> AsyncIterator[CommonSettings]:
    """Settings with a namespace of their own; what it declared is deleted afterwards."""
    namespace = f"cryptocast-test-{uuid.uuid4().hex[:12]}"
    settings = CommonSettings(
        amqp_url=amqp_url,
        namespace=namespace,
        mongo_url=mongo_url,
        mongo_db=namespace.replace(".", "_"),
        max_attempts=3,
        retry_delay_seconds=0.5,
    )
    yield settings
    try:
        async with asyncio.timeout(CLEAN_UP_SECONDS):  # a broker that stalls fails no test
            await delete_declared(amqp_url, settings)
    except TimeoutError:
        warnings.warn(
            f"RabbitMQ did not delete {namespace}'s queues within {CLEAN_UP_SECONDS} s",
            stacklevel=1,
        )


async def delete_declared(amqp_url: str, settings: CommonSettings) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in [*SERVICE_QUEUES, *(f"inference.{symbol}" for symbol in TEST_SYMBOLS)]:
            queue = settings.queue_for(name)
            delays = [delay_queue(queue, d) for d in retry_delays(settings)]
            for declared in [queue, isolation_queue(queue), *delays]:
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.ChannelClosed):  # never declared
                    await channel.queue_delete(declared)
        channel = await connection.channel()
        for exchange in (settings.exchange, settings.dead_letter_exchange):
            await channel.exchange_delete(exchange)
