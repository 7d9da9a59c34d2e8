"""A stuck async test fails with the place it is stuck, and the run goes on.

pytest-timeout's thread ends the whole run at its limit, and all CI keeps of its output is
the end: the main thread's stack, which for an async test is the event loop's ``select``,
naming neither the test nor what it awaits. A minute before that limit, this watchdog
cancels the test's task with a message naming every frame it awaits, so the summary's
FAILED line says where it hung and teardown gets its minute."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

MARGIN_SECONDS = 60.0  # left to the teardown before pytest-timeout ends the run


def time_limit(request: pytest.FixtureRequest) -> float:
    """pytest-timeout's limit for this test, where it looks: the test's marker, then
    ``--timeout``, then the ini file; 0 means none."""
    marker = request.node.get_closest_marker("timeout")
    if marker and marker.args:
        return float(marker.args[0])
    given = request.config.getoption("timeout", None)
    return float(given if given is not None else request.config.getini("timeout") or 0)


def awaited_frames(coroutine: Any) -> list[str]:
    """``file:line in function`` for each coroutine or async generator in the await chain."""
    frames = []
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "ag_frame", None)
        if frame is None:
            break
        code = frame.f_code
        frames.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "ag_await", None)
    return frames


def cancel_stuck(code: Any, after: float) -> None:
    for task in asyncio.all_tasks():
        coroutine = task.get_coro()
        if getattr(coroutine, "cr_code", None) is code:
            where = " <- ".join(reversed(awaited_frames(coroutine)))
            task.cancel(f"watchdog: still running after {after:.0f} s, awaiting {where}")


@pytest.fixture
async def watchdog(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Given to every async test by ``conftest.watched``."""
    limit = time_limit(request)
    if limit <= 0:  # no limit: nothing to fail before
        yield
        return
    after = limit - min(MARGIN_SECONDS, limit / 4)  # a short limit keeps a quarter for teardown
    test_code = inspect.unwrap(request.function).__code__
    timer = asyncio.get_running_loop().call_later(after, cancel_stuck, test_code, after)
    yield
    timer.cancel()
