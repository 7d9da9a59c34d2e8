"""The chaos harness: a throwaway RabbitMQ node, a killable nx-27017, the four services as
separate processes, the exact outcome a replay must have, and the table of results.

Nothing here touches the machine's shared broker on 5672: the node runs under a name, ports
and directories of its own and is removed at the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from pymongo import AsyncMongoClient

from cryptocast.embedded_mongo import EmbeddedMongo, free_port, free_ports
from cryptocast_common.events import (
    BasedOn,
    Candle,
    ModelRef,
    Prediction,
    Verification,
    iso_utc,
)
from cryptocast_inference.registry import build_predictor
from cryptocast_inference.settings import InferenceSettings
from cryptocast_ingestor.settings import BUNDLED_REPLAY
from cryptocast_ingestor.sources.replay import load_timeline

ROOT = Path(__file__).parents[2]
PYTHON = sys.executable
INTERVAL = "4h"
SERVICES = ("gateway", "verifier", "inference", "ingestor")
COLLECTIONS = ("candles", "predictions", "verifications")
# The bundled rabbitmq-server in /usr/sbin is a wrapper that switches user and does not exec;
# the script under /usr/lib execs erl (and erl execs beam.smp) when RABBITMQ_ALLOW_INPUT is set.
RABBITMQ_SERVER = os.environ.get(
    "CRYPTOCAST_CHAOS_RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server"
)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


async def poll(check: Callable[[], Awaitable[Any]], within: float, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; return it, or None after ``within``
    seconds. For waits whose failure is reported by the caller with more context."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(every)


# ---------------------------------------------------------------------------------------------
# RabbitMQ


class RabbitNode:
    """One RabbitMQ node in the foreground, as a child process whose pid is beam.smp itself."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"chaos-{uuid.uuid4().hex[:12]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []
        self.log = base / "rabbitmq.log"
        base.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")  # no management plugin
        (base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf
        # /etc/rabbitmq/rabbitmq.conf pins the listener to 5672: never read it.
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def environment(self) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_", "CRYPTOCAST_"))
        }
        return keep | {
            "HOME": str(self.base),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_MNESIA_DIR": str(self.base / "mnesia" / "node"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_LOGS": "-",  # to stdout, which goes to rabbitmq.log
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            # exec erl instead of running it in the background of a shell; -noinput keeps
            # the Erlang shell away from stdin
            "RABBITMQ_ALLOW_INPUT": "true",
            "RABBITMQ_SERVER_START_ARGS": "-noinput",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _launch(self) -> subprocess.Popen[bytes]:
        if not Path(RABBITMQ_SERVER).exists():
            raise RuntimeError(
                f"{RABBITMQ_SERVER} not found: install rabbitmq-server (Debian "
                "package) or set CRYPTOCAST_CHAOS_RABBITMQ_SERVER"
            )
        with self.log.open("ab") as log:
            log.write(f"\n==== chaos harness: starting {self.name} ====\n".encode())
            log.flush()
            return subprocess.Popen(
                [RABBITMQ_SERVER],
                env=self.environment(),
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self, within: float = 90.0) -> float:
        """Start on the same data directory and port; return the seconds until an AMQP
        connection succeeds."""
        assert not self.running(), "the node is already running"
        started = time.monotonic()
        self.process = self._launch()
        deadline = started + within
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited with {self.process.returncode}:\n{tail(self.log)}"
                )
            try:
                connection = await aio_pika.connect(self.url, timeout=2)
            except Exception:
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError(
                        f"RabbitMQ did not accept AMQP within {within}s:\n{tail(self.log)}"
                    ) from None
                await asyncio.sleep(0.1)
            else:
                await connection.close()
                break
        seconds = time.monotonic() - started
        self.start_seconds.append(seconds)
        executable = os.readlink(f"/proc/{self.process.pid}/exe")
        assert executable.endswith("beam.smp"), (
            f"the started process is {executable}, not the Erlang VM: a kill would orphan it"
        )
        return seconds

    def start_sync(self) -> float:
        return asyncio.run(self.start())

    async def list_queues(self, prefix: str) -> dict[str, int]:
        """Messages (ready plus unacknowledged) in every queue whose name starts with
        ``prefix``: delay queues and exclusive queues included. Raises if the node is away."""
        process = await asyncio.create_subprocess_exec(
            str(Path(RABBITMQ_SERVER).with_name("rabbitmqctl")),
            "-n",
            self.name,
            "-q",
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--formatter",
            "json",
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        if process.returncode != 0:
            raise RuntimeError(f"rabbitmqctl list_queues: {err.decode(errors='replace')}")
        return {
            q["name"]: int(q["messages_ready"]) + int(q["messages_unacknowledged"])
            for q in json.loads(out)
            if q["name"].startswith(prefix)
        }

    async def list_bindings(self, exchange: str) -> dict[str, list[str]]:
        """Queue name -> binding keys, for the bindings of ``exchange``."""
        process = await asyncio.create_subprocess_exec(
            str(Path(RABBITMQ_SERVER).with_name("rabbitmqctl")),
            "-n",
            self.name,
            "-q",
            "list_bindings",
            "source_name",
            "destination_name",
            "destination_kind",
            "routing_key",
            "--formatter",
            "json",
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        if process.returncode != 0:
            raise RuntimeError(f"rabbitmqctl list_bindings: {err.decode(errors='replace')}")
        bindings: dict[str, list[str]] = {}
        for row in json.loads(out):
            if row["source_name"] == exchange and row["destination_kind"] == "queue":
                bindings.setdefault(row["destination_name"], []).append(row["routing_key"])
        return bindings

    def kill(self) -> None:
        """SIGKILL the VM and everything in its process group (erl_child_setup)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# nx-27017


class KillableMongo(EmbeddedMongo):
    """cryptocast.embedded_mongo's server, plus SIGKILL; start() again reuses data and port."""

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGKILL)
        self._process.wait(30)
        self._process = None

    @property
    def log(self) -> Path:
        return self.data_dir / "nx-27017.log"


# ---------------------------------------------------------------------------------------------
# The replay and what it must produce


@dataclass(frozen=True)
class Replay:
    symbols: tuple[str, ...]
    backfill: int
    live: int
    pace_seconds: float

    def steps(self) -> list[list[Candle]]:
        """The steps the ingestor publishes, in order (see sources.replay.replay)."""
        steps = load_timeline(BUNDLED_REPLAY, self.symbols, INTERVAL)
        split = max(0, len(steps) - self.live)
        taken = steps[max(0, split - self.backfill) :]
        return [[admitted.candle() for admitted in step] for step in taken]

    @property
    def backfill_steps(self) -> int:
        steps = load_timeline(BUNDLED_REPLAY, self.symbols, INTERVAL)
        split = max(0, len(steps) - self.live)
        return split - max(0, split - self.backfill)

    @property
    def paced_seconds(self) -> float:
        return (len(self.steps()) - self.backfill_steps) * self.pace_seconds

    def environment(self) -> dict[str, str]:
        return {
            "CRYPTOCAST_INGESTOR_SOURCE": "replay",
            "CRYPTOCAST_INGESTOR_BACKFILL": str(self.backfill),
            "CRYPTOCAST_INGESTOR_REPLAY_LIVE": str(self.live),
            "CRYPTOCAST_INGESTOR_PACE_SECONDS": str(self.pace_seconds),
        }


@cache
def serving_model() -> tuple[ModelRef, int]:
    """The shipped model and the candles one prediction needs (window + feature warm-up)."""
    predictor = build_predictor(InferenceSettings(), INTERVAL)
    return predictor.model, predictor.window


@dataclass(frozen=True)
class Expected:
    candles: frozenset[str]
    predictions: frozenset[str]
    verifications: frozenset[str]

    def of(self, collection: str) -> frozenset[str]:
        return getattr(self, collection)  # type: ignore[no-any-return]

    def counts(self) -> str:
        return "/".join(str(len(self.of(c))) for c in COLLECTIONS)


def expected_outcome(replay: Replay) -> Expected:
    """Derived from the code, not from a run: inference predicts for every candle with
    ``window - 1`` contiguous candles of the same symbol before it in the replay (nothing
    older is in the fresh database to seed a window from); the verifier verifies every
    prediction whose target candle, the next contiguous one, is in the replay."""
    model, window = serving_model()
    candles: dict[str, list[Candle]] = {s: [] for s in replay.symbols}
    for step in replay.steps():
        for candle in step:
            candles[candle.symbol].append(candle)
    candle_ids, prediction_ids, verification_ids = set(), set(), set()
    for series in candles.values():
        run = 0
        for index, candle in enumerate(series):
            candle_ids.add(candle.event_id)
            contiguous = index > 0 and series[index - 1].close_time == candle.open_time
            run = run + 1 if contiguous else 1
            if run < window:
                continue
            prediction = Prediction(
                symbol=candle.symbol,
                interval=candle.interval,
                based_on=BasedOn(close_time=candle.close_time, close=candle.close),
                target_time=candle.close_time + (candle.close_time - candle.open_time),
                predicted_close=candle.close,
                model=model,
            )
            prediction_ids.add(prediction.event_id)
            following = series[index + 1] if index + 1 < len(series) else None
            if following is not None and following.close_time == prediction.target_time:
                verification = Verification(
                    symbol=candle.symbol,
                    interval=candle.interval,
                    prediction_id=prediction.event_id,
                    model=model,
                    target_time=prediction.target_time,
                    based_on_time=candle.close_time,
                    based_on_close=candle.close,
                    predicted_close=candle.close,
                    actual_close=following.close,
                    error_pct=0.0,
                    tolerance_pct=2.0,
                    within_tolerance=True,
                    direction_correct=None,
                    naive_error_pct=0.0,
                )
                verification_ids.add(verification.event_id)
    if not verification_ids:
        raise AssertionError(
            f"a replay of {len(replay.steps())} steps is too short for the "
            f"served model's {window}-candle window: nothing to check"
        )
    return Expected(frozenset(candle_ids), frozenset(prediction_ids), frozenset(verification_ids))


@dataclass
class Stored:
    ids: dict[str, list[str]]  # every _id per collection (replay symbols only)
    logical_duplicates: dict[str, int]

    def counts(self) -> str:
        return "/".join(str(len(self.ids[c])) for c in COLLECTIONS)

    def duplicates(self) -> dict[str, int]:
        return {
            c: len(self.ids[c]) - len(set(self.ids[c])) + self.logical_duplicates[c]
            for c in COLLECTIONS
        }

    def missing(self, expected: Expected) -> dict[str, list[str]]:
        return {c: sorted(expected.of(c) - set(self.ids[c])) for c in COLLECTIONS}

    def unexpected(self, expected: Expected) -> dict[str, list[str]]:
        return {c: sorted(set(self.ids[c]) - expected.of(c)) for c in COLLECTIONS}

    def matches(self, expected: Expected) -> bool:
        return all(sorted(self.ids[c]) == sorted(expected.of(c)) for c in COLLECTIONS)

    def total(self) -> int:
        return sum(len(v) for v in self.ids.values())


LOGICAL_KEY = {
    "candles": ("symbol", "interval", "open_time"),
    "predictions": ("symbol", "interval", "target_time", "horizon"),
    "verifications": ("prediction_id",),
}


# ---------------------------------------------------------------------------------------------
# The services


class ServiceProcess:
    """``python -m cryptocast_<name>`` with its own environment; one log file per start."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, port: int) -> None:
        self.name = name
        self.env = env
        self.log_dir = log_dir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exit_codes: list[int] = []

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.log"

    def logs(self) -> list[Path]:
        return [self.log_dir / f"{self.name}.{n}.log" for n in range(1, self.starts + 1)]

    def start(self) -> None:
        assert not self.alive(), f"{self.name} is already running"
        self.starts += 1
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", f"cryptocast_{self.name}"],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> int:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(30)
        self.exit_codes.append(code)
        return code

    async def terminate(self, within: float = 30.0) -> int | None:
        """SIGTERM; the exit code, or None if it did not exit within ``within`` seconds (then
        it is killed)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        process = self.process

        async def exited() -> bool:
            return process.poll() is not None

        if not await poll(exited, within):
            self.kill()
            return None
        code = process.returncode
        self.exit_codes.append(code)
        return code

    async def ready(self, http: httpx.AsyncClient) -> bool:
        if not self.alive():
            return False
        try:
            response = await http.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# ---------------------------------------------------------------------------------------------
# One pipeline: the four services on a namespace and database of their own


@dataclass
class Snapshot:
    stored: Stored
    queues: dict[str, int]  # messages (ready + unacked) per queue of the namespace but <ns>.dead
    dead: int | None


class Pipeline:
    def __init__(
        self, rabbit: RabbitNode, mongo: KillableMongo, replay: Replay, log_dir: Path
    ) -> None:
        self.rabbit = rabbit
        self.mongo = mongo
        self.replay = replay
        self.expected = expected_outcome(replay)
        self.namespace = f"chaos-{uuid.uuid4().hex[:12]}"
        self.db_name = self.namespace.replace("-", "_")
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        self.gateway_port = ports["gateway"]
        base = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOCAST_")} | {
            "CRYPTOCAST_AMQP_URL": rabbit.url,
            "CRYPTOCAST_MONGO_URL": mongo.url,
            "CRYPTOCAST_MONGO_DB": self.db_name,
            "CRYPTOCAST_NAMESPACE": self.namespace,
            "CRYPTOCAST_SYMBOLS": ",".join(replay.symbols),
            "CRYPTOCAST_INTERVAL": INTERVAL,
            "CRYPTOCAST_LOG_LEVEL": "INFO",
            "CRYPTOCAST_HEALTH_HOST": "127.0.0.1",
            "CRYPTOCAST_GATEWAY_HOST": "127.0.0.1",
            "CRYPTOCAST_GATEWAY_PORT": str(self.gateway_port),
            "CRYPTOCAST_INFERENCE_GATEWAY_URL": f"http://127.0.0.1:{self.gateway_port}",
            # One model's events to account for: the no-change baseline is not under test.
            "CRYPTOCAST_INFERENCE_BASELINE": "false",
            **replay.environment(),
        }
        self.services: dict[str, ServiceProcess] = {}
        for name in SERVICES:
            port = ports[name]
            env = dict(base)
            if name != "gateway":
                env["CRYPTOCAST_HEALTH_PORT"] = str(port)
            self.services[name] = ServiceProcess(name, env, log_dir, port)
        self.mongo_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo.url, tz_aware=True, serverSelectionTimeoutMS=2000
        )
        self.http = httpx.AsyncClient()
        self.ingestor_started_at = 0.0

    # -- life cycle --------------------------------------------------------------------------

    async def start(self, within: float = 90.0) -> None:
        """Gateway, verifier and inference, ready; then the ingestor, which starts the replay."""
        for name in ("gateway", "verifier", "inference"):
            self.services[name].start()
        await self.wait_ready(("gateway", "verifier", "inference"), within)
        self.start_ingestor()

    def start_ingestor(self) -> None:
        self.services["ingestor"].start()
        self.ingestor_started_at = time.monotonic()

    async def wait_ready(self, names: Sequence[str], within: float) -> None:
        async def all_ready() -> bool:
            return all([await self.services[n].ready(self.http) for n in names])

        if not await poll(all_ready, within, every=0.2):
            states = {
                n: (self.services[n].alive(), await self.services[n].ready(self.http))
                for n in names
            }
            raise AssertionError(
                f"services not ready within {within}s (alive, ready): {states}\n{self.tails()}"
            )

    async def all_ready(self) -> bool:
        return all([await s.ready(self.http) for s in self.services.values()])

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM every service still running (ingestor first); their exit codes."""
        codes: dict[str, int | None] = {}
        for name in reversed(SERVICES):
            service = self.services[name]
            if service.alive():
                codes[name] = await service.terminate(30)
        return codes

    async def close(self) -> None:
        for service in self.services.values():
            if service.alive():
                service.kill()
        await self.http.aclose()
        with contextlib.suppress(Exception):
            await self.mongo_client.drop_database(self.db_name)
        await self.mongo_client.close()
        if self.rabbit.running():
            # Every queue of the namespace (delay and other helper queues included), so that
            # idle queues do not pile up on the node over the session.
            queues = set(self.queue_names())
            with contextlib.suppress(Exception):
                queues |= set(await self.rabbit.list_queues(f"{self.namespace}."))
            with contextlib.suppress(Exception):
                connection = await aio_pika.connect(self.rabbit.url, timeout=5)
                async with connection:
                    for queue in sorted(queues):
                        channel = await connection.channel()
                        with contextlib.suppress(Exception):
                            await channel.queue_delete(queue)
                    channel = await connection.channel()
                    for exchange in (f"{self.namespace}.events", f"{self.namespace}.dlx"):
                        with contextlib.suppress(Exception):
                            await channel.exchange_delete(exchange)

    def queue_names(self) -> list[str]:
        return [f"{self.namespace}.{name}" for name in ("gateway", "inference", "verifier", "dead")]

    # -- observation -------------------------------------------------------------------------

    def replay_finished(self) -> bool:
        return '"msg": "replay finished"' in self.services["ingestor"].log_text()

    async def stored(self) -> Stored:
        db = self.mongo_client[self.db_name]
        ids: dict[str, list[str]] = {}
        logical: dict[str, int] = {}
        for collection in COLLECTIONS:
            key = LOGICAL_KEY[collection]
            docs = (
                await db[collection]
                .find({"symbol": {"$in": list(self.replay.symbols)}}, {name: 1 for name in key})
                .to_list()
            )
            ids[collection] = [str(d["_id"]) for d in docs]
            keys = [tuple(str(d.get(name)) for name in key) for d in docs]
            logical[collection] = len(keys) - len(set(keys))
        return Stored(ids, logical)

    async def try_stored(self) -> Stored | None:
        try:
            return await self.stored()
        except Exception:  # the database is down
            return None

    async def queue_depths(self) -> dict[str, int | None]:
        """Ready messages per queue (the dead-letter queue included); None: not declared.
        Raises if the broker cannot be reached."""
        depths: dict[str, int | None] = {}
        connection = await aio_pika.connect(self.rabbit.url, timeout=5)
        async with connection:
            for name in self.queue_names():
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    depths[name.rsplit(".", 1)[1]] = None
                else:
                    depths[name.rsplit(".", 1)[1]] = queue.declaration_result.message_count
        return depths

    async def try_queue_depths(self) -> dict[str, int | None] | None:
        try:
            return await self.queue_depths()
        except Exception:
            return None

    async def drain_dead_letters(
        self, idle: float = 5.0
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every message in <ns>.dead, taken off the queue (consumed until it is empty and
        nothing has come for ``idle`` seconds)."""
        messages: list[aio_pika.abc.AbstractIncomingMessage] = []
        connection = await aio_pika.connect(self.rabbit.url, timeout=5)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1000)
            try:
                queue = await channel.declare_queue(f"{self.namespace}.dead", passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return []
            async with queue.iterator(no_ack=True) as incoming:
                while True:
                    try:
                        messages.append(await asyncio.wait_for(anext(incoming), idle))
                    except TimeoutError:
                        break
        return messages

    async def documents(self) -> dict[str, list[dict[str, Any]]]:
        db = self.mongo_client[self.db_name]
        return {c: await db[c].find({}).sort("_id", 1).to_list() for c in COLLECTIONS}

    def tails(self, lines: int = 30) -> str:
        parts = []
        for service in self.services.values():
            for log in service.logs():
                parts.append(f"---- {log.name} ----\n{tail(log, lines)}")
        parts.append(f"---- rabbitmq ----\n{tail(self.rabbit.log, 15)}")
        parts.append(f"---- nx-27017 ----\n{tail(self.mongo.log, 15)}")
        return "\n".join(parts)

    def log_lines(self, needle: str, limit: int = 5) -> list[str]:
        """The first ``limit`` log lines holding ``needle``, then how many more there are."""
        found = []
        for service in self.services.values():
            for log in service.logs():
                if not log.exists():
                    continue
                for line in log.read_text(errors="replace").splitlines():
                    if needle in line:
                        found.append(f"{log.name}: {line[:400]}")
        more = [f"... and {len(found) - limit} more with {needle}"] if len(found) > limit else []
        return found[:limit] + more

    # -- waiting for the outcome ------------------------------------------------------------

    async def wait_for_replay(self, within: float) -> bool:
        async def finished() -> bool:
            return self.replay_finished()

        return bool(await poll(finished, within, every=0.2))

    async def wait_for_expected(self, cap: float = 120.0, stall: float = 15.0) -> float | None:
        """Wait until the stored ids are exactly the expected ones; give up when nothing has
        changed for ``stall`` seconds or after ``cap``. The monotonic time it happened."""
        deadline = time.monotonic() + cap
        last_total, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            stored = await self.try_stored()
            now = time.monotonic()
            if stored is not None:
                if stored.matches(self.expected):
                    return now
                if stored.total() != last_total:
                    last_total, last_change = stored.total(), now
            if now - last_change > stall:
                return None
            await asyncio.sleep(0.2)
        return None

    async def try_list_queues(self) -> dict[str, int] | None:
        try:
            return await self.rabbit.list_queues(f"{self.namespace}.")
        except Exception:
            return None

    async def settle(self, within: float = 30.0) -> Snapshot:
        """Wait until no queue of the namespace holds a message (ready or unacknowledged;
        the dead-letter queue aside) and the stored ids and dead letters have stopped
        changing (two reads about a second apart), so that nothing more is on its way;
        then the final state."""
        previous: tuple[dict[str, list[str]], int | None] | None = None
        snapshot: Snapshot | None = None
        deadline = time.monotonic() + within
        while True:
            stored = await self.try_stored()
            queues = await self.try_list_queues()
            if stored is not None and queues is not None:
                dead = queues.pop(f"{self.namespace}.dead", None)
                snapshot = Snapshot(stored, queues, dead)
                quiet = not any(queues.values())
                if quiet and previous == (stored.ids, dead):
                    return snapshot
                previous = (stored.ids, dead) if quiet else None
            if time.monotonic() > deadline:
                if snapshot is None:
                    raise AssertionError(
                        f"neither the broker nor the database answered in {within}s\n{self.tails()}"
                    )
                return snapshot
            await asyncio.sleep(1.0)

    async def wait_recovered(
        self, since: float, before: Stored | None, within: float = 90.0
    ) -> float | None:
        """Seconds from ``since`` until every service answers /readyz and the pipeline has
        moved end to end again (a verification stored that was not there at the fault, or
        everything expected stored); None if not within ``within``."""
        baseline = set(before.ids["verifications"]) if before else set()

        async def recovered() -> bool:
            if not await self.all_ready():
                return False
            stored = await self.try_stored()
            if stored is None:
                return False
            return bool(set(stored.ids["verifications"]) - baseline) or stored.matches(
                self.expected
            )

        if await poll(recovered, max(0.0, since + within - time.monotonic()), every=0.2):
            return time.monotonic() - since
        return None

    async def step_processed(self, index: int) -> bool:
        """Step ``index`` of the replay has gone through: its candles, their predictions and
        the verifications of the step before are stored."""
        stored = await self.try_stored()
        if stored is None:
            return False
        step = self.replay.steps()[index]
        step_times = {c.close_time for c in step}
        candles = {c.event_id for c in step}
        have = {c: set(stored.ids[c]) for c in COLLECTIONS}
        predictions = {
            p
            for p in self.expected.predictions
            if any(
                p.endswith(iso_utc(t + (step[0].close_time - step[0].open_time)))
                for t in step_times
            )
        }
        verifications = {
            v
            for v in self.expected.verifications
            if any(v.endswith(iso_utc(t)) for t in step_times)
        }
        return (
            candles <= have["candles"]
            and predictions <= have["predictions"]
            and verifications <= have["verifications"]
        )


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    fault: str
    expected: str = ""
    stored: str = ""
    missing: str = ""
    duplicates: str = ""
    dead_lettered: str = ""
    recovery: str = ""
    outcome: str = "error"
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    broker_starts: list[float] = field(default_factory=list)
    baseline_wall: float | None = None

    def table(self) -> str:
        header = (
            "| fault | expected c/p/v | stored c/p/v | missing c/p/v | duplicates c/p/v "
            "| dead-lettered | recovery s | outcome |"
        )
        lines = [header, "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in self.rows:
            lines.append(
                f"| {r.fault} | {r.expected} | {r.stored} | {r.missing} | "
                f"{r.duplicates} | {r.dead_lettered} | {r.recovery} | {r.outcome} |"
            )
        return "\n".join(lines)

    def notes(self) -> str:
        return "\n".join(f"- {r.fault}: {r.note}" for r in self.rows if r.note)


RESULTS = Results()
