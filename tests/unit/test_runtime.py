"""The lifecycle every service shares: what it opened is closed, newest first, and its
background tasks are cancelled."""

import asyncio

import pytest

from cryptocast_common import runtime
from cryptocast_common.runtime import Resources, cancel, indexed
from cryptocast_common.settings import CommonSettings


async def test_resources_close_newest_first_and_once() -> None:
    closed: list[str] = []
    resources = Resources()
    for name in ("bus", "client", "task"):

        async def close(name: str = name) -> None:
            closed.append(name)

        resources.own(close)
    await resources.close()
    await resources.close()
    assert closed == ["task", "client", "bus"]


async def test_a_resource_that_never_closes_holds_the_stop_only_so_long(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "CLOSE_SECONDS", 0.05)
    closed: list[str] = []

    async def bus() -> None:
        closed.append("bus")

    async def stuck_client() -> None:
        await asyncio.Event().wait()  # a server that stopped answering

    resources = Resources()
    resources.own(bus)
    resources.own(stuck_client)
    async with asyncio.timeout(5):
        await resources.close()
    assert closed == ["bus"]  # the others still close
    [warning] = caplog.records
    assert warning.getMessage() == "a resource did not close in time; left open"
    assert "stuck_client" in warning.resource


async def test_a_database_s_client_is_closed_with_the_resources() -> None:
    resources = Resources()
    database = resources.database(CommonSettings(mongo_db="runtime-test"))
    assert database.name == "runtime-test"
    assert len(resources.closers) == 1
    await resources.close()  # no server is contacted: the client connects lazily


async def test_cancel_ends_running_tasks_and_leaves_ended_ones() -> None:
    running = asyncio.create_task(asyncio.sleep(3600))

    async def fail() -> None:
        raise RuntimeError("handled where it ran")

    ended = asyncio.create_task(fail())
    await asyncio.wait([ended])
    await cancel(running, ended, None)
    assert running.cancelled()
    assert isinstance(ended.exception(), RuntimeError)


async def test_indexed_returns_the_store_once_its_indexes_exist() -> None:
    class Store:
        ensured = 0

        async def ensure_indexes(self) -> None:
            self.ensured += 1

    store = Store()
    assert await indexed(store) is store
    assert store.ensured == 1
