"""Composition root of the ingestor: the one place its real adapters are built."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from cryptocast_common.bus import Bus
from cryptocast_common.runtime import connect_bus
from cryptocast_common.settings import CommonSettings
from cryptocast_ingestor.handlers import replay
from cryptocast_ingestor.settings import IngestorSettings
from cryptocast_ingestor.sources.replay import load_timeline


@dataclass
class Ingestor:
    bus: Bus
    common: CommonSettings
    settings: IngestorSettings
    owns_bus: bool
    name: str = "ingestor"
    task: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        steps = load_timeline(self.settings.replay_dir, self.common.symbols, self.common.interval)
        self.task = asyncio.create_task(replay(
            steps, self.bus.publish, backfill=self.settings.backfill,
            live=self.settings.replay_live, pace_seconds=self.settings.pace_seconds))

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.owns_bus:
            await self.bus.close()


async def bootstrap(
    common: CommonSettings | None = None,
    settings: IngestorSettings | None = None,
    bus: Bus | None = None,
) -> Ingestor:
    common = common or CommonSettings()
    return Ingestor(bus or await connect_bus(common), common, settings or IngestorSettings(),
                    owns_bus=bus is None)
