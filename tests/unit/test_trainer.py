"""The trainer with fakes: schedule parsing, a run on real bundled candles, failures and
cancellation register nothing, the HTTP trigger and its API key, retention."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.events import Event, ModelCard, ModelChange
from cryptocast_common.registry import InMemoryModelRegistry
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.distribution import load_distribution
from cryptocast_inference.settings import SHIPPED_MODEL
from cryptocast_trainer.announce import announce_version, model_cards
from cryptocast_trainer.bootstrap import Trainer, bootstrap
from cryptocast_trainer.jobs import TrainingError
from cryptocast_trainer.schedule import parse_schedule
from cryptocast_trainer.settings import TrainerSettings
from cryptocast_trainer.sources import CandleSeries, CsvCandleSource, SourceError
from tests.waiting import eventually

DATA = Path(__file__).parents[2] / "services/ingestor/cryptocast_ingestor/data/binance_4h"
SYMBOLS = ["BTC", "ETH", "SOL"]
FAST = {"history_candles": 2400, "validation_candles": 180, "schedule": "off", "port": 0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("daily", 86400),
        ("Hourly", 3600),
        ("weekly", 604800),
        ("every 6h", 21600),
        ("6h", 21600),
        ("every 30m", 1800),
        ("every 2d", 172800),
        ("21600", 21600),
        (" 90s ", 90),
        ("off", None),
    ],
)
def test_schedule_forms(text: str, seconds: float | None) -> None:
    assert parse_schedule(text) == seconds


@pytest.mark.parametrize("text", ["", "sometimes", "every h", "5", "every 10s", "-6h", "6w"])
def test_schedule_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule(text)


def test_settings_check_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOCAST_TRAINER_SCHEDULE", "every 6h")
    monkeypatch.setenv("CRYPTOCAST_TRAINER_API_KEYS", "a, b")
    settings = TrainerSettings()
    assert settings.schedule_seconds == 21600
    assert [k.get_secret_value() for k in settings.api_keys] == ["a", "b"]
    monkeypatch.setenv("CRYPTOCAST_TRAINER_SCHEDULE", "now and then")
    with pytest.raises(ValidationError, match="schedule"):
        TrainerSettings()


class RecordingBus(InMemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[Event] = []

    async def publish(self, events: list[Event]) -> None:  # type: ignore[override]
        self.published += events
        await super().publish(events)


async def make_trainer(
    source: object = None, metrics_registry: CollectorRegistry | None = None, **overrides: object
) -> tuple[Trainer, InMemoryModelRegistry, RecordingBus]:
    """``metrics_registry``: where the run metrics go, for a test that reads them back."""
    registry, bus = InMemoryModelRegistry(), RecordingBus()
    trainer = await bootstrap(
        CommonSettings(symbols=SYMBOLS),
        TrainerSettings(**(FAST | overrides)),  # type: ignore[arg-type]
        bus=bus,
        registry=registry,
        source=source or CsvCandleSource(DATA),  # type: ignore[arg-type]
        metrics_registry=metrics_registry or CollectorRegistry(),
    )
    return trainer, registry, bus


def runs(metrics: CollectorRegistry, outcome: str) -> float | None:
    """How many runs were started, succeeded or failed, read from the registry."""
    return metrics.get_sample_value(f"cryptocast_trainer_runs_{outcome}_total")


async def test_a_run_on_bundled_candles_registers_a_challenger_and_announces_it() -> None:
    trainer, registry, bus = await make_trainer(api_keys="k")
    await trainer.start()
    try:
        result = await trainer.run_once()
    finally:
        await trainer.stop()
    version, files = await registry.get(result.version.ref)
    assert version.name == "dist-4h" and version.status == "challenger"
    assert set(files) == {"model.json"}
    pooled = version.metrics["pooled"]
    assert pooled["model"]["n"] > 0 and 0.9 < pooled["model"]["mae_ratio"] < 1.1
    assert {"dm", "dm_p", "mae_ratio_ci"} <= set(pooled["model"])
    assert 0.6 < pooled["intervals"]["cov80"] < 0.95 and pooled["intervals"]["cov95"] > 0.85
    assert set(version.metrics["coins"]) == set(SYMBOLS)
    assert version.data["coins"] == SYMBOLS
    assert version.data["training_range"]["last_target_before"] == version.data["validation"][0]
    body = json.loads(files["model.json"])
    shipped = json.loads((await registry.get(SHIPPED_MODEL))[1]["model.json"])
    assert body["selection"] == shipped["selection"]  # refitted, not reselected
    assert body["params"] != shipped["params"]
    # announced: one ModelChange "registered" per symbol, by the trainer (never a promotion)
    changes = [e for e in bus.published if isinstance(e, ModelChange)]
    assert len(changes) == len(bus.published) and [c.symbol for c in changes] == SYMBOLS
    assert {(c.kind, c.by, str(c.model)) for c in changes} == {
        ("registered", "trainer", result.version.ref)
    }
    assert changes[0].routing_key == "model_change.BTC.4h"
    assert "challenger" in changes[0].reason and "MAE ratio" in changes[0].reason
    # to the millisecond, as MongoDB keeps it: the gateway reads the event back under its id
    assert changes[0].decided_at.microsecond % 1000 == 0


async def test_model_cards_can_be_announced_instead() -> None:
    metrics = CollectorRegistry()
    trainer, _, _ = await make_trainer(seed_bundled=False, metrics_registry=metrics)
    result = await trainer.run_once()
    await trainer.stop()
    bus = RecordingBus()
    _, files = await trainer.deps.registry.get(result.version.ref)
    cards = await announce_version(bus, files, SYMBOLS, "4h", build=model_cards)
    assert all(isinstance(c, ModelCard) for c in cards) and bus.published == cards
    assert {str(c.model) for c in cards} == {result.version.ref}  # type: ignore[union-attr]
    assert runs(metrics, "started") == 1 and runs(metrics, "succeeded") == 1
    last_success = metrics.get_sample_value("cryptocast_trainer_last_success_timestamp_seconds")
    assert runs(metrics, "failed") == 0 and (last_success or 0) > 0
    assert trainer.last["status"] == "succeeded" and trainer.last["model"] == result.version.ref


async def test_the_registered_file_loads_for_serving(tmp_path: Path) -> None:
    trainer, registry, _ = await make_trainer(seed_bundled=False)
    result = await trainer.run_once()
    await trainer.stop()
    _, files = await registry.get(result.version.ref)
    (tmp_path / "model.json").write_bytes(files["model.json"])
    forecaster = load_distribution(tmp_path)
    forecaster.check_fits(None, "4h")
    assert forecaster.window == 120 and forecaster.skill.mase is not None


class FailingSource:
    name = "failing"

    async def series(self, symbol: str, interval: str, limit: int) -> CandleSeries:
        raise SourceError("gateway down")


class BlockingSource(CsvCandleSource):
    """Answers the first symbol, then waits forever: the run is cancelled mid-way."""

    def __init__(self) -> None:
        super().__init__(DATA)
        self.reached = asyncio.Event()

    async def series(self, symbol: str, interval: str, limit: int) -> CandleSeries:
        if symbol != SYMBOLS[0]:
            self.reached.set()
            await asyncio.Event().wait()
        return await super().series(symbol, interval, limit)


async def test_a_failed_run_registers_nothing() -> None:
    metrics = CollectorRegistry()
    trainer, registry, bus = await make_trainer(FailingSource(), metrics, seed_bundled=False)
    with pytest.raises(SourceError, match="gateway down"):
        await trainer.run_once()
    assert await registry.versions() == [] and bus.published == []
    assert runs(metrics, "failed") == 1
    assert trainer.last["status"] == "failed" and "gateway down" in trainer.last["error"]
    await trainer.stop()


async def test_too_little_history_is_a_clear_failure() -> None:
    trainer, registry, _ = await make_trainer(
        seed_bundled=False, history_candles=300, validation_candles=250
    )
    with pytest.raises(TrainingError, match="too few candles"):
        await trainer.run_once()
    assert await registry.versions() == []
    await trainer.stop()


async def test_a_cancelled_run_registers_nothing() -> None:
    source, metrics = BlockingSource(), CollectorRegistry()
    trainer, registry, bus = await make_trainer(source, metrics, seed_bundled=False)
    status, _ = trainer.trigger()
    assert status == 202
    async with asyncio.timeout(10):
        await source.reached.wait()
    assert trainer.trigger()[0] == 409  # one run at a time
    await trainer.stop()  # SIGTERM mid-run cancels it
    assert await registry.versions() == [] and bus.published == []
    assert trainer.last["status"] == "cancelled"
    assert runs(metrics, "failed") == 1


async def test_http_trigger_needs_the_api_key_and_reports_the_run() -> None:
    trainer, registry, _ = await make_trainer(api_keys="secret-key", seed_bundled=False)
    await trainer.start()
    assert trainer.http is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{trainer.http.port}") as client:
            assert (await client.post("/train")).status_code == 401
            assert (await client.post("/train", headers={"X-API-Key": "wrong"})).status_code == 401
            started = await client.post("/train", headers={"X-API-Key": "secret-key"})
            assert started.status_code == 202 and started.json()["status"] == "started"
            assert trainer._run is not None
            async with asyncio.timeout(60):
                await trainer._run
            last = (await client.get("/train")).json()
            assert last["status"] == "succeeded" and last["run"] == started.json()["run"]
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/nothing")).status_code == 404
    finally:
        await trainer.stop()
    assert [v.status for v in await registry.versions()] == ["challenger"]


async def test_no_key_configured_means_401() -> None:
    trainer, _, _ = await make_trainer(seed_bundled=False)
    await trainer.start()
    assert trainer.http is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{trainer.http.port}") as client:
            assert (await client.post("/train", headers={"X-API-Key": ""})).status_code == 401
    finally:
        await trainer.stop()


async def test_retention_keeps_the_last_versions_and_the_bundled_ones() -> None:
    trainer, registry, _ = await make_trainer(keep_last=1)
    days = iter(range(1, 3))
    trainer.deps.clock = lambda: datetime(2026, 1, next(days), tzinfo=UTC)
    await trainer.start()
    try:
        first = await trainer.run_once()
        second = await trainer.run_once()
    finally:
        await trainer.stop()
    refs = {v.ref for v in await registry.versions()}
    assert second.version.ref in refs and first.version.ref not in refs
    assert second.removed == [first.version.ref]
    assert SHIPPED_MODEL in refs  # bundled: protected


async def test_the_schedule_runs_on_start() -> None:
    trainer, registry, _ = await make_trainer(seed_bundled=False, run_on_start=True)
    await trainer.start()
    try:
        await eventually(registry.versions, within=60)
    finally:
        await trainer.stop()
