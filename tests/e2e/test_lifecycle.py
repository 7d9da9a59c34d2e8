"""The model lifecycle end to end: a trainer and two inference replicas as separate processes,
over RabbitMQ and the Mongo wire server, beside the gateway and the verifier.

The market is rigged, honestly: BTC zigzags (every 4-hour move is undone by the next one,
with a varying amplitude). The shipped selection's point model is mean reversion, so a
version retrained on these candles learns to expect half the last move back, while the
champion, no change, expects nothing. The trainer registers that version on demand (POST
/train with its API key); both replicas load it as a challenger; after ``MIN_VERDICTS``
verdicts the verifier's policy promotes it. The replica that takes the candles (a single
active consumer) serves the new champion from the next candle on; the standby, which
followed the promotion on a queue of its own, serves it as soon as it takes over. Neither
restarts.

Candles are published on a paced clock: one every ``CANDLE_SECONDS`` (a 4-hour interval
squeezed), each once the previous one's predictions are stored and its verdicts decided on.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from cryptocast.embedded_mongo import free_port
from cryptocast_common.amqp import AmqpBus
from cryptocast_common.events import Candle
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import bootstrap as gateway
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import MongoEventStore
from cryptocast_verifier.bootstrap import bootstrap as verifier
from cryptocast_verifier.settings import VerifierSettings
from tests.factories import candle
from tests.waiting import eventually

HISTORY = 2300  # the shipped selection's weekly seasonality needs 2,100 training candles
VALIDATION = 100  # candles the trainer holds out for its walk-forward check
MIN_VERDICTS = 8  # the policy's record, kept small: a promotion after 8 paired verdicts
CANDLE_SECONDS = 1.5  # the paced clock's 4-hour interval
API_KEY = "e2e-trainer-key"
NAIVE = "naive@1"
STEP = timedelta(hours=4)
START = datetime(2025, 9, 1, tzinfo=UTC)


def market(first: int, count: int) -> list[Candle]:
    """Candles ``first`` .. ``first + count - 1`` of the zigzag: each move is undone by the
    next, its size varying between 0.5% and 1.5%."""
    closes = [100.0]
    for k in range(1, first + count):
        move = 0.01 * (1 + 0.5 * math.sin(0.7 * k))
        closes.append(closes[-1] * math.exp(move if k % 2 else -move))
    candles = []
    for i in range(first, first + count):
        opened, close = closes[max(i - 1, 0)], closes[i]
        moment = START + i * STEP  # all in the past: the gateway serves no future candles
        candles.append(
            candle(
                i,
                close,
                open_time=moment,
                close_time=moment + STEP,
                open=opened,
                high=max(opened, close),
                low=min(opened, close),
            )
        )
    return candles


class Process:
    """A service as a child process, its output in a log file."""

    def __init__(self, name: str, module: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def lines(self, message: str) -> list[dict[str, Any]]:
        """Its JSON log lines with this message."""
        text = self.log.read_text(errors="replace").splitlines()
        lines = [json.loads(line) for line in text if line.startswith("{")]
        return [line for line in lines if line["msg"] == message]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def settings(common: CommonSettings) -> CommonSettings:
    return common.model_copy(update={"symbols": ["BTC"]})


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
async def db(settings: CommonSettings) -> AsyncIterator[Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    yield mongo[settings.mongo_db]
    await mongo.drop_database(settings.mongo_db)
    await mongo.close()


def environment(settings: CommonSettings, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOCAST_")}
    return keep | {
        "CRYPTOCAST_AMQP_URL": settings.amqp_url or "",
        "CRYPTOCAST_NAMESPACE": settings.namespace,
        "CRYPTOCAST_MONGO_URL": settings.mongo_url,
        "CRYPTOCAST_MONGO_DB": settings.mongo_db,
        "CRYPTOCAST_SYMBOLS": "BTC",
        "CRYPTOCAST_INTERVAL": "4h",
        "CRYPTOCAST_MAX_ATTEMPTS": "3",
        "CRYPTOCAST_RETRY_DELAY_SECONDS": "0.5",
        **{f"CRYPTOCAST_{key.upper()}": value for key, value in extra.items()},
    }


async def test_a_retrained_version_is_promoted_and_served_by_every_replica(
    settings: CommonSettings, db: Any, processes: list[Process], tmp_path: Path
) -> None:
    store = MongoEventStore(db)
    await store.ensure_indexes()
    await store.upsert(market(0, HISTORY))  # what the gateway stored before the test
    url = settings.amqp_url or ""
    api = await gateway(settings, GatewaySettings(port=0))
    policy = VerifierSettings(gate_verdicts=2 * MIN_VERDICTS, gate_min_verdicts=MIN_VERDICTS)
    judge = await verifier(settings, policy)
    producer = await AmqpBus.connect(url, settings)
    http = httpx.AsyncClient(base_url="", timeout=10)
    try:
        await api.start()
        await judge.start()
        base = f"http://127.0.0.1:{api.port}"
        trainer_port = free_port()
        trainer = Process(
            "trainer",
            "cryptocast_trainer",
            environment(
                settings,
                trainer_gateway_url=base,
                trainer_port=str(trainer_port),
                trainer_host="127.0.0.1",
                trainer_api_keys=API_KEY,
                trainer_schedule="off",
                trainer_seed_bundled="false",
                trainer_history_candles=str(HISTORY),
                trainer_validation_candles=str(VALIDATION),
            ),
            tmp_path,
        )
        processes.append(trainer)
        # The first replica to start takes the candles (single active consumer); the second
        # stands by, following the lifecycle on its own queue.
        replicas = []
        for n in (1, 2):
            replica = Process(
                f"inference-{n}",
                "cryptocast_inference",
                environment(
                    settings,
                    inference_model="naive",
                    inference_registry="mongo",
                    inference_model_cache_dir=str(tmp_path / f"models-{n}"),
                    inference_gateway_url=base,
                ),
                tmp_path,
            )
            processes.append(replica)
            replicas.append(replica)
            await logged(replica, "service started")
        await logged(trainer, "service started")

        # A version trained on demand, loaded by both replicas as a challenger.
        trained = await http.post(f"http://127.0.0.1:{trainer_port}/train")
        assert trained.status_code == 401  # the key is required
        trained = await http.post(
            f"http://127.0.0.1:{trainer_port}/train", headers={"X-API-Key": API_KEY}
        )
        assert trained.status_code == 202

        async def run_done() -> dict[str, Any] | None:
            last: dict[str, Any] = (await http.get(f"http://127.0.0.1:{trainer_port}/train")).json()
            assert last["status"] in ("running", "succeeded"), last
            return last if last["status"] == "succeeded" else None

        challenger = (await eventually(run_done, within=30))["model"]
        for replica in replicas:
            [loaded] = await logged(replica, "model loaded as a challenger")
            assert loaded["model"] == challenger

        # The paced market: one candle per interval, predicted by both models, judged.
        for n, current in enumerate(market(HISTORY, MIN_VERDICTS + 1)):
            tick = time.monotonic()
            await producer.publish([current])
            predictions = await predicted(db, current)
            assert predictions[NAIVE]["role"] == "champion"
            assert predictions[challenger]["role"] == "challenger"
            if n:  # this candle verified the previous one's predictions: wait for the verdicts
                await eventually(lambda c=current: judged(db, challenger, c), within=10)
            if n < MIN_VERDICTS:
                await asyncio.sleep(max(0.0, CANDLE_SECONDS - (time.monotonic() - tick)))

        async def promotion() -> dict[str, Any] | None:
            found: dict[str, Any] | None = await db.model_changes.find_one({"kind": "promoted"})
            return found

        promoted = await eventually(promotion, within=CANDLE_SECONDS)
        assert (promoted["model"], promoted["previous"]) == (ref(challenger), ref(NAIVE))
        evidence = promoted["evidence"]
        assert evidence["against"] == "champion" and evidence["n"] == MIN_VERDICTS
        assert evidence["dm"] < -1.96 and evidence["mae_ratio"] < 0.6
        assert promoted["decided_at"] == current.close_time  # the deciding verdict's candle
        await asyncio.sleep(max(0.0, CANDLE_SECONDS - (time.monotonic() - tick)))

        # The next candle, one interval later: the active replica serves the new champion.
        following = market(HISTORY + n + 1, 2)
        await producer.publish([following[0]])
        served = await predicted(db, following[0])
        assert served[challenger]["role"] == "champion" and served[NAIVE]["role"] == "baseline"
        # The standby followed too, without a restart: it serves the new champion as soon as
        # it takes over from the first.
        await asyncio.to_thread(replicas[0].stop)
        await producer.publish([following[1]])
        served = await predicted(db, following[1], within=30)
        assert served[challenger]["role"] == "champion" and served[NAIVE]["role"] == "baseline"
        for replica in replicas:
            [now] = replica.lines("now champion")
            assert now["model"] == challenger
        answer = await http.get(f"{base}/api/v1/models/history", params={"symbol": "BTC"})
        told = {
            (c["kind"], c["by"]) for c in answer.json()["data"] if c["model"] == ref(challenger)
        }
        # registered by the trainer, promoted, and its gate open: it beats no change as well
        assert told == {
            ("registered", "trainer"),
            ("promoted", "policy"),
            ("gate_opened", "policy"),
        }
    finally:
        await http.aclose()
        await producer.close()
        for service in (judge, api):
            await service.stop()


async def logged(process: Process, message: str) -> list[dict[str, Any]]:
    """The process's log lines with this message, once there is one."""

    async def found() -> list[dict[str, Any]]:
        if process.process.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.log.read_text()[-3000:]}")
        return process.lines(message)

    return await eventually(found, within=30)


async def predicted(db: Any, current: Candle, within: float = 10) -> dict[str, dict[str, Any]]:
    """The predictions made from ``current``, by model."""

    async def both() -> dict[str, dict[str, Any]] | None:
        found = await db.predictions.find({"based_on.close_time": current.close_time}).to_list()
        by_model = {f"{p['model']['name']}@{p['model']['version']}": p for p in found}
        return by_model if len(by_model) == 2 else None

    return await eventually(both, within=within)


async def judged(db: Any, model: str, current: Candle) -> bool:
    query = {"model": model, "target_time": current.close_time}
    return await db.lifecycle_scores.find_one(query) is not None


def ref(model: str) -> dict[str, str]:
    name, version = model.split("@")
    return {"name": name, "version": version}
