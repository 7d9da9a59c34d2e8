"""Waiting in tests: always bounded, never a bare sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], within: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds.

    For state outside this process (a queue, a database, an HTTP answer) where no event can
    be awaited."""
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return result


async def finished(task: Awaitable[T], within: float = 60.0) -> T:
    """``task``'s result, failing after ``within`` seconds rather than waiting for ever."""
    async with asyncio.timeout(within):
        return await task
