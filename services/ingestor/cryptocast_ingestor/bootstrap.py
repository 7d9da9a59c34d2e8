"""Composition root of the ingestor: the one place its real adapters are built."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cryptocast_common.bus import Bus
from cryptocast_common.events import Candle, Event, interval_delta
from cryptocast_common.runtime import Resources, cancel
from cryptocast_common.settings import CommonSettings
from cryptocast_ingestor.coins import (
    CoinDeps,
    CoinStore,
    Follow,
    MongoCoinStore,
    follow_coin,
    handle_coins,
)
from cryptocast_ingestor.live import LiveIngestor, LivePolicy
from cryptocast_ingestor.quality import JumpRule
from cryptocast_ingestor.settings import IngestorSettings, replay_folder
from cryptocast_ingestor.sources import CandleSource
from cryptocast_ingestor.sources.coingecko import CoinGeckoSource
from cryptocast_ingestor.sources.exchange import ExchangeSource
from cryptocast_ingestor.sources.replay import Timeline, load_timeline, load_timelines, replay


def build_source(settings: IngestorSettings) -> CandleSource:
    if settings.source == "exchange":
        return ExchangeSource.connect(
            settings.exchange, settings.quote, settings.markets, settings.page_limit
        )
    key = settings.coingecko_api_key
    return CoinGeckoSource.connect(
        settings.coingecko_url, key.get_secret_value() if key else None, settings.coingecko_ids
    )


def live_policy(settings: IngestorSettings) -> LivePolicy:
    return LivePolicy(
        backfill=settings.backfill,
        settle_seconds=settings.settle_seconds,
        lag_retry_seconds=settings.lag_retry_seconds,
        max_backoff_seconds=settings.max_backoff_seconds,
        jumps=jump_rule(settings),
    )


def jump_rule(settings: IngestorSettings) -> JumpRule:
    return JumpRule(settings.jump_sigmas, settings.volatility_window)


@dataclass
class Ingestor:
    bus: Bus
    common: CommonSettings
    settings: IngestorSettings
    resources: Resources
    coins: CoinStore
    source: CandleSource | None = None
    name: str = "ingestor"
    task: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        follow = self._replay() if self.source is None else self._live(self.source)
        deps = CoinDeps(self.coins, follow)
        for coin in await self.coins.added():  # coins added before this start
            await self.bus.publish(await follow_coin(coin, follow))

        async def added(events: list[Event]) -> list[Event]:
            return await handle_coins(events, deps)

        await self.bus.consume(
            self.common.queue_for("ingestor"), ["coin_added.#"], added, batch_size=16
        )

    def _replay(self) -> Follow:
        """Start replaying the configured coins; an added coin joins the timeline."""
        intervals = self.common.intervals
        base = min(intervals, key=interval_delta)
        folder = replay_folder(self.settings, self.common.symbols, base)
        jumps = jump_rule(self.settings)
        last = self.settings.backfill + self.settings.replay_live
        replayed = frozenset(self.common.symbols)
        timeline = Timeline(
            load_timelines(folder, self.common.symbols, intervals, jumps, last=last)
        )
        self.task = asyncio.create_task(
            replay(
                timeline,
                self.bus.publish,
                backfill=len(timeline.steps),  # each interval's backfill already, no more
                live=self.settings.replay_live,
                pace_seconds=self.settings.pace_seconds,
            )
        )

        async def follow(symbol: str, interval: str) -> list[Candle]:
            if symbol in replayed:
                return []  # replayed from the start
            built_from = None if interval == base else base
            steps = await asyncio.to_thread(
                load_timeline, folder, [symbol], interval, jumps, None, built_from
            )
            return timeline.join([admitted for step in steps for admitted in step])

        return follow

    def _live(self, source: CandleSource) -> Follow:
        live = LiveIngestor(source, self.bus.publish, live_policy(self.settings))
        for interval in self.common.intervals:
            for symbol in self.common.symbols:
                live.add(symbol, interval)
        self.task = asyncio.create_task(live.run())

        async def follow(symbol: str, interval: str) -> list[Candle]:
            live.add(symbol, interval)  # the live loop backfills it
            return []

        return follow

    async def check_ready(self) -> None:
        await self.bus.ping()

    async def stop(self) -> None:
        await cancel(self.task)
        await self.resources.close()


async def bootstrap(
    common: CommonSettings | None = None,
    settings: IngestorSettings | None = None,
    bus: Bus | None = None,
    source: CandleSource | None = None,
    coins: CoinStore | None = None,
) -> Ingestor:
    common = common or CommonSettings()
    settings = settings or IngestorSettings()
    resources = Resources()
    if source is None and settings.source != "replay":
        source = build_source(settings)
    if source is not None:
        resources.own(source.close)  # a source handed in is the ingestor's too, as before
    coins = coins or MongoCoinStore(resources.database(common))
    bus = await resources.bus(common, bus)
    return Ingestor(bus, common, settings, resources, coins, source)
