"""Composition root of the trainer: the registry, the candle source, the bus, the HTTP
server and the schedule; parameters default to None so tests pass fakes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from cryptocast_common.bus import Bus
from cryptocast_common.registry import ModelRegistry, MongoModelRegistry
from cryptocast_common.runtime import Resources, cancel, indexed
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS
from cryptocast_trainer.http import TrainerHttp
from cryptocast_trainer.jobs import RunMetrics, RunResult, TrainerDeps, run_training
from cryptocast_trainer.settings import TrainerSettings
from cryptocast_trainer.sources import CandleSource, GatewayCandleSource

log = logging.getLogger(__name__)
_METRICS: RunMetrics | None = None


def process_metrics() -> RunMetrics:
    """The process's run metrics, registered once (served on /metrics)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = RunMetrics.create()
    return _METRICS


@dataclass
class Trainer:
    deps: TrainerDeps
    settings: TrainerSettings
    resources: Resources
    ping_registry: Any
    name: str = "trainer"
    http: TrainerHttp | None = None
    last: dict[str, Any] = field(default_factory=lambda: {"status": "never run"})
    _run: asyncio.Task[RunResult] | None = None
    _schedule: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.settings.seed_bundled:
            seeded = await self.deps.registry.seed_from_folder(BUNDLED_ARTIFACTS)
            log.info("bundled models in the registry", extra={"models": [v.ref for v in seeded]})
        self.http = TrainerHttp(
            self.settings.host,
            self.settings.port,
            self.settings.api_keys,
            self.trigger,
            lambda: self.last,
            self.check_ready,
        )
        await self.http.start()
        self._schedule = asyncio.create_task(self._scheduled(), name="trainer-schedule")

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done()

    def trigger(self) -> tuple[int, dict[str, Any]]:
        """Start a run now unless one is running: (HTTP status, body)."""
        if self.running:
            return 409, {"status": "error", "message": "a run is in progress", "run": self.last}
        run_id = uuid.uuid4().hex[:12]
        self.last = {"run": run_id, "status": "running", "started_at": _now()}
        self._run = asyncio.create_task(self._tracked(run_id), name=f"trainer-run-{run_id}")
        # Its outcome is logged, counted and kept in ``last``; nobody need await it.
        self._run.add_done_callback(lambda task: task.cancelled() or task.exception())
        return 202, {"status": "started", "run": run_id}

    async def run_once(self) -> RunResult:
        """Trigger a run and wait for it (tests, and the schedule)."""
        status, body = self.trigger()
        if status != 202:
            raise RuntimeError(body["message"])
        assert self._run is not None
        return await self._run

    async def _tracked(self, run_id: str) -> RunResult:
        try:
            result = await run_training(self.deps)
        except asyncio.CancelledError:
            self.last = self.last | {"status": "cancelled", "ended_at": _now()}
            raise
        except Exception as error:
            self.last = self.last | {"status": "failed", "error": repr(error), "ended_at": _now()}
            raise
        self.last = self.last | {
            "status": "succeeded",
            "model": result.version.ref,
            "announced": len(result.announced),
            "removed": result.removed,
            "ended_at": _now(),
        }
        return result

    async def _scheduled(self) -> None:
        every = self.settings.schedule_seconds
        first = self.settings.run_on_start
        while first or every is not None:
            if not first:
                await asyncio.sleep(every or 0)
            first = False
            if self.running:
                log.info("scheduled run skipped: a run is in progress")
                continue
            with contextlib.suppress(Exception):  # logged and counted by run_training
                await self.run_once()

    async def check_ready(self) -> None:
        await self.deps.bus.ping()
        await self.ping_registry()

    async def stop(self) -> None:
        await cancel(self._schedule, self._run)
        if self.http:
            await self.http.stop()
        await self.resources.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def bootstrap(
    common: CommonSettings | None = None,
    settings: TrainerSettings | None = None,
    bus: Bus | None = None,
    registry: ModelRegistry | None = None,
    source: CandleSource | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Trainer:
    common = common or CommonSettings()
    settings = settings or TrainerSettings()
    resources = Resources()
    ping_registry: Any = _no_ping
    if registry is None:
        mongo_registry = await indexed(MongoModelRegistry(resources.database(common)))
        registry, ping_registry = mongo_registry, mongo_registry.ping
    if source is None:
        client = httpx.AsyncClient(base_url=settings.gateway_url, timeout=30.0)
        resources.own(client.aclose)
        source = GatewayCandleSource(client)
    metrics = process_metrics() if metrics_registry is None else RunMetrics.create(metrics_registry)
    deps = TrainerDeps(
        source=source,
        registry=registry,
        bus=await resources.bus(common, bus),
        symbols=common.symbols,
        interval=common.interval,
        model_name=settings.model_name,
        base_model=settings.base_model,
        history_candles=settings.history_candles,
        validation_candles=settings.validation_candles,
        keep_last=settings.keep_last,
        protected=set(settings.protected_models),
        metrics=metrics,
    )
    return Trainer(deps, settings, resources, ping_registry)


async def _no_ping() -> None:
    return None
