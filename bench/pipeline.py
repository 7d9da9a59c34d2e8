"""End-to-end throughput of the whole pipeline: the four services as separate processes over
the machine's RabbitMQ, with an nx-27017 server of their own, replaying bundled history as
fast as it goes.

    .venv/bin/python bench/pipeline.py [--candles 300] [--coins BTC,ETH,...] [--no-baseline]
        [--replicas 2] [--also 1d] [--live 40 --pace 1 --watch 4]

The services run as ``python -m cryptocast_<name>`` on a namespace of their own
(``bench-<random>``), which is deleted from the broker afterwards (queues and exchanges, by
name, without the management plugin). The ingestor replays the last ``--candles`` candles
per coin of the bundled Binance 4h set (every coin by default) as one backfill: pace 0, no
live part. Inference runs its default lineup, which publishes the no-change baseline's
predictions beside the champion's (``--no-baseline`` turns that off); the verifier's lifecycle
consumer runs as well.

Measured, by counting the gateway's documents in MongoDB every ``--sample`` seconds:

- the ingestor's start-up (process start to the first candle stored: reading the bundles
  and the quality gate),
- from the first candle stored: the time until the last prediction, the last verification
  and the last document of any kind are stored, and candles, predictions and verifications
  per second over those times (a candle counts when it, its predictions and its verdicts
  are stored, so candles per second is over the time to the last document),
- CPU seconds (/proc/<pid>/stat: user + system) and peak RSS (/proc/<pid>/status: VmHWM)
  of each service process and of nx-27017, and the CPU of the machine's RabbitMQ node when
  the bench's broker is local (its peak RSS is the node's since it started);
- nx-27017's own ceiling, measured first in the same run: candle documents stored per second
  by unordered bulk upserts of the gateway's batch size, with nothing else running;
- operations per candle stored, from the ingestor's start to the end: the database's by
  kind, from the server's own counters (``serverStatus``: ``opcounters`` and
  ``metrics.commands``, which nx-27017 gets from ``bench/nx_counted.py``), less the bench's
  own reads; and the broker's, messages published to the events exchange (counted on a
  queue of the bench's own bound to every key) and the copies of them routed to the
  services' queues (those messages matched against the bindings ``rabbitmqctl
  list_bindings`` lists);
- with ``--live N``: freshness at live pace. After the backfill the ingestor publishes N more
  steps, one every ``--pace`` seconds; for the watched coins the bench times each candle from
  its arrival on a queue of its own (about when it was published) to the champion's prediction
  made from it arriving there, to ``GET /<coin>`` serving that prediction (timed on the
  gateway's stream, which the same handler call feeds), and to the
  champion's verdict on it being stored. Only steps
  published once every queue had drained count, so the figures are not a backlog's.

Prints a Markdown table, then the same figures as one JSON line. A service that exits
early, a timeout or a stall prints the logs' tails and exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aio_pika
import httpx
import websockets
from nx_counted import KIND_OF, command_name, statements
from pymongo import AsyncMongoClient, ReplaceOne, monitoring

from cryptocast.embedded_mongo import EmbeddedMongo, free_ports
from cryptocast_common.amqp import delay_queue, isolation_queue, retry_delays
from cryptocast_common.bus import topic_matches
from cryptocast_common.coins import symbol_of
from cryptocast_common.documents import to_document
from cryptocast_common.events import Candle
from cryptocast_common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "services" / "ingestor" / "cryptocast_ingestor" / "data" / "binance_4h"
INTERVAL = "4h"
COLLECTIONS = ("candles", "predictions", "verifications")
CEILING_DOCUMENTS = 20_000
CEILING_BATCH = 256  # the gateway's default batch: one bulk write per collection and batch
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Rates over fewer sampling intervals than this are not reported: the counts are read every
# --sample seconds, so a run shorter than a few of them cannot be timed (it printed a
# prediction rate of 10^11 a second for a run whose predictions all landed in one sample).
MIN_SAMPLES = 4
DEFAULT_AMQP_URL = os.environ.get("CRYPTOCAST_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class BenchFailure(Exception):
    """The run cannot be measured; the message says why."""


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# Processes and their resource use


@dataclass
class Usage:
    cpu_seconds: float  # user + system, of the process and its waited-for children
    rss_mb: float
    peak_rss_mb: float  # VmHWM


def read_usage(pid: int) -> Usage | None:
    """None once the process is gone (or a zombie, whose status has no memory lines)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces: the
    # third field (state) is at index 0, utime/stime/cutime/cstime (14-17) at 11-14.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    memory = {
        name: int(rest.split()[0])
        for name, _, rest in (line.partition(":") for line in status.splitlines())
        if name in ("VmRSS", "VmHWM")
    }
    if len(memory) < 2:
        return None
    return Usage(ticks / CLOCK_TICKS, memory["VmRSS"] / 1024, memory["VmHWM"] / 1024)


def local_broker_pid() -> int | None:
    """The Erlang VM of the RabbitMQ node on this machine; None if there is none, or if
    there are several (then which one is the bench's broker is not known)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "beam.smp":
                found.append(int(comm.parent.name))
    return found[0] if len(found) == 1 else None


@dataclass
class Tracked:
    """A process whose usage is sampled while it runs: the last sample outlives it."""

    name: str
    pid: int
    log: Path
    last: Usage | None = None
    at_first_candle: Usage | None = None

    def sample(self) -> Usage | None:
        usage = read_usage(self.pid)
        if usage is not None:
            self.last = usage
        return usage


class Service(Tracked):
    def __init__(self, name: str, env: dict[str, str], log: Path, port: int) -> None:
        super().__init__(name, 0, log)
        self.module = f"cryptocast_{name.split('-')[0]}"  # inference-2 runs cryptocast_inference
        self.env = env
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid
        self.started_at = time.monotonic()

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    async def ready(self, http: httpx.AsyncClient) -> bool:
        try:
            response = await http.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def stop(self, within: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


# ---------------------------------------------------------------------------------------------
# The namespace on the broker


def work_queues(settings: CommonSettings) -> dict[str, list[str]]:
    """The durable queues the services consume, grouped by service."""
    q = settings.queue_for
    return {
        "ingestor": [q("ingestor")],
        "gateway": [q("gateway"), q("gateway.alerts")],
        "inference": [q("inference")],
        "verifier": [q("verifier"), q("verifier.lifecycle")],
    }


async def delete_namespace(url: str, settings: CommonSettings, within: float = 60.0) -> bool:
    """Delete every durable queue the services declare (work, isolation and delay queues,
    the dead-letter queue) and both exchanges; the exclusive ones went with the services.
    False, with a warning, if the broker did not let that happen within ``within`` s."""
    names = [settings.dead_letter_queue]
    for queues in work_queues(settings).values():
        for queue in queues:
            names += [queue, isolation_queue(queue)]
            names += [delay_queue(queue, d) for d in retry_delays(settings)]
    try:
        async with asyncio.timeout(within):
            connection = await aio_pika.connect(url, timeout=10)
            async with connection:
                for name in names:
                    channel = await connection.channel()
                    with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                        await channel.queue_delete(name)
                channel = await connection.channel()
                for exchange in (settings.exchange, settings.dead_letter_exchange):
                    with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                        await channel.exchange_delete(exchange)
    except Exception as exc:
        print(
            f"warning: namespace {settings.namespace} not deleted from the broker ({exc!r}); "
            f"run bench/pipeline.py --delete-namespace {settings.namespace} later",
            file=sys.stderr,
        )
        return False
    return True


def bench_settings(url: str, namespace: str, coins: list[str]) -> CommonSettings:
    """The services run on the defaults for retries: the delay queues they declare follow."""
    return CommonSettings(
        amqp_url=url,
        namespace=namespace,
        symbols=coins,
        max_attempts=CommonSettings.model_fields["max_attempts"].default,
        retry_delay_seconds=CommonSettings.model_fields["retry_delay_seconds"].default,
    )


# ---------------------------------------------------------------------------------------------
# Operations: the database's and the broker's


OP_KINDS = ("insert", "update", "delete", "query", "getmore", "command")


@dataclass
class Ops:
    """Database operations as MongoDB's ``opcounters`` count them (per document inserted,
    per update or delete statement, per find, getMore or other command), and requests
    (round trips) per command name."""

    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OP_KINDS, 0))
    requests: dict[str, int] = field(default_factory=dict)
    # nx-27017's only: requests and seconds spent per "<command> <collection>"
    seconds: dict[str, tuple[int, float]] = field(default_factory=dict)

    @classmethod
    def of_status(cls, status: dict[str, Any]) -> Ops:
        counters = status.get("opcounters")
        if not isinstance(counters, dict):
            raise BenchFailure("the database's serverStatus has no opcounters")
        commands = status.get("metrics", {}).get("commands", {})
        spent = status.get("nxSeconds", {})
        return cls(
            {k: int(counters.get(k, 0)) for k in OP_KINDS},
            {n: int(c["total"]) for n, c in commands.items() if isinstance(c, dict)},
            {w: (int(t["n"]), float(t["s"])) for w, t in spent.items()},
        )

    def minus(self, other: Ops) -> Ops:
        """What happened between ``other`` and this. Seconds are the server's own only:
        the bench's listener leaves them alone."""
        names = set(self.requests) | set(other.requests)
        spent = {
            w: (n - other.seconds.get(w, (0, 0.0))[0], s - other.seconds.get(w, (0, 0.0))[1])
            for w, (n, s) in self.seconds.items()
        }
        return Ops(
            {k: self.kinds[k] - other.kinds[k] for k in OP_KINDS},
            {n: self.requests.get(n, 0) - other.requests.get(n, 0) for n in names},
            spent,
        )

    def copy(self) -> Ops:
        return Ops(dict(self.kinds), dict(self.requests), dict(self.seconds))


class OwnCommands(monitoring.CommandListener):
    """The bench's own commands (counts, reads, serverStatus), to take them out of the
    server's counts: the same classification as ``bench/nx_counted.py``."""

    def __init__(self) -> None:
        self.ops = Ops()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = command_name(event.command)
        kind = KIND_OF.get(name, "command")
        self.ops.kinds[kind] += statements(name, event.command)
        self.ops.requests[name] = self.ops.requests.get(name, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


class Messages:
    """Messages published to the events exchange, seen on a queue of the bench's own bound
    to every key (no acks: it only counts), by routing key."""

    def __init__(self) -> None:
        self.by_key: dict[str, int] = {}
        self.counting = False

    async def start(
        self, connection: aio_pika.abc.AbstractRobustConnection, settings: CommonSettings
    ) -> None:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "#")

        async def seen(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if self.counting:
                key = message.routing_key or ""
                self.by_key[key] = self.by_key.get(key, 0) + 1

        await queue.consume(seen, no_ack=True)

    def published(self) -> dict[str, int]:
        by_type: dict[str, int] = {}
        for key, n in self.by_key.items():
            kind = key.split(".", 1)[0]
            by_type[kind] = by_type.get(kind, 0) + n
        return dict(sorted(by_type.items()))

    def delivered(self, bindings: list[tuple[str, str]]) -> dict[str, int]:
        """Copies routed to the queues, by the bindings (queue, pattern) of the exchange;
        the queues of a replica's own (``<name>.<random>``) summed under ``<name>``."""
        patterns: dict[str, list[str]] = {}
        for queue, pattern in bindings:
            patterns.setdefault(queue, []).append(pattern)
        copies: dict[str, int] = {}
        for queue, keys in sorted(patterns.items()):
            name = re.sub(r"\.[0-9a-f]{12}$", "", queue)
            routed = (
                n for key, n in self.by_key.items() if any(topic_matches(p, key) for p in keys)
            )
            copies[name] = copies.get(name, 0) + sum(routed)
        return copies


def exchange_bindings(exchange: str, namespace: str) -> list[tuple[str, str]] | None:
    """(queue, pattern) of every binding of ``exchange`` to a queue of the namespace, from
    ``rabbitmqctl`` (AMQP cannot list bindings); None where it cannot be asked."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return None
    try:
        listed = subprocess.run(
            [
                *(rabbitmqctl, "list_bindings", "-q", "--formatter", "json"),
                *("source_name", "destination_name", "destination_kind", "routing_key"),
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        rows = json.loads(listed.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    prefix = f"{namespace}."
    return [
        (row["destination_name"][len(prefix) :], row["routing_key"])
        for row in rows
        if row["source_name"] == exchange
        and row["destination_kind"] == "queue"
        and row["destination_name"].startswith(prefix)
    ]


@contextlib.contextmanager
def counted_nx(workdir: Path) -> Iterator[None]:
    """``nx-27017`` on PATH, for ``EmbeddedMongo`` to start, is the server with MongoDB's
    counters (``bench/nx_counted.py``), while the block runs."""
    shim = workdir / "bin" / "nx-27017"
    shim.parent.mkdir(parents=True, exist_ok=True)
    counted = Path(__file__).with_name("nx_counted.py")
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{counted}" "$@"\n')
    shim.chmod(0o755)
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{shim.parent}{os.pathsep}{before}"
    try:
        yield
    finally:
        os.environ["PATH"] = before


# ---------------------------------------------------------------------------------------------
# The pipeline under measurement


@dataclass
class Timeline:
    """Monotonic times of what was observed; counts when they last changed."""

    ingestor_started: float = 0.0
    first_candle: float | None = None
    replay_finished: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLLECTIONS, 0))
    changed: dict[str, float] = field(default_factory=dict)
    peak_backlog: dict[str, int] = field(default_factory=dict)
    samples: int = 0


# ---------------------------------------------------------------------------------------------
# Freshness at live pace


Key = tuple[str, datetime]  # (symbol, a candle's close time)


@dataclass
class Freshness:
    """When each candle of the watched coins reached a queue of the bench's own (about when
    the ingestor published it), when ``GET /<coin>`` first served the prediction made from it,
    and when the champion's verdict on the prediction that targeted it was stored."""

    coins: list[str]
    settled: float | None = None  # when every queue was first seen empty after the backfill
    published: dict[Key, float] = field(default_factory=dict)
    predicted: dict[Key, float] = field(default_factory=dict)  # the champion's, on the bus
    served: dict[Key, float] = field(default_factory=dict)  # GET /<coin> answers with it
    verified: dict[Key, float] = field(default_factory=dict)
    # The champion's verdicts not yet seen stored: verification id -> the candle it targets.
    awaiting: dict[str, Key] = field(default_factory=dict)

    def first_seen(self, seen: dict[Key, float], key: Key) -> None:
        seen.setdefault(key, time.monotonic())

    def live_keys(self, live: int) -> list[Key]:
        """The last ``live`` candles of each watched coin (the paced part of the replay)
        published after the backfill had drained: freshness at live pace, not in a queue."""
        keys: list[Key] = []
        for coin in self.coins:
            times = sorted(t for symbol, t in self.published if symbol == coin)
            keys += [(coin, t) for t in times[-live:]]
        settled = self.settled
        return [k for k in keys if settled is not None and self.published[k] >= settled]

    def summary(self, live: int) -> dict[str, Any]:
        keys = self.live_keys(live)

        def delays(seen: dict[Key, float]) -> dict[str, Any]:
            ms = sorted((seen[k] - self.published[k]) * 1000 for k in keys if k in seen)
            if not ms:
                return {"n": 0, "missing": len(keys)}
            return {
                "n": len(ms),
                "missing": len(keys) - len(ms),
                "p50_ms": round(statistics.median(ms), 1),
                "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 1),
                "max_ms": round(ms[-1], 1),
            }

        return {
            "coins": self.coins,
            "live_steps_measured": len(keys) // len(self.coins),
            "to_predicted": delays(self.predicted),
            "to_served": delays(self.served),
            "to_verified": delays(self.verified),
        }


async def record_published(
    connection: aio_pika.abc.AbstractRobustConnection, settings: CommonSettings, fresh: Freshness
) -> None:
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for coin in fresh.coins:
        await queue.bind(exchange, f"candle.{coin}.{INTERVAL}")
        await queue.bind(exchange, f"prediction.{coin}.{INTERVAL}")

    async def arrived(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        if body["type"] == "candle":
            key = (body["symbol"], datetime.fromisoformat(body["close_time"]))
            fresh.first_seen(fresh.published, key)
        elif body.get("role") == "champion" and body.get("horizon", 1) == 1:
            key = (body["symbol"], datetime.fromisoformat(body["based_on"]["close_time"]))
            fresh.first_seen(fresh.predicted, key)
            target = (body["symbol"], datetime.fromisoformat(body["target_time"]))
            fresh.awaiting[f"verification:{body['event_id']}"] = target
        await message.ack()

    await queue.consume(arrived)


async def watch_served(base_url: str, fresh: Freshness) -> None:
    """The gateway's WebSocket stream of the watched coins' served predictions. The stream is
    fed by the same handler call that puts a prediction in the memory ``GET /<coin>``
    answers from, so its arrival is when ``GET /<coin>`` starts serving it, measured without
    the load that polling ``GET /<coin>`` fast enough would put on the gateway."""
    url = base_url.replace("http://", "ws://") + "/api/v1/stream?symbols=" + ",".join(fresh.coins)
    async with websockets.connect(url) as stream:
        async for message in stream:
            event = json.loads(message)
            if event.get("type") == "prediction" and event.get("role") == "champion":
                key = (event["symbol"], datetime.fromisoformat(event["based_on"]["close_time"]))
                fresh.first_seen(fresh.served, key)


async def poll_verified(db: Any, fresh: Freshness) -> None:
    """The champion's verdicts as they are stored, looked up by id. A query on times would be
    evaluated by nx-27017 over every stored document, every 10 ms: the bench would then slow
    down the very services it measures."""
    while True:
        if fresh.awaiting:
            query = {"_id": {"$in": list(fresh.awaiting)}}
            async for doc in db.verifications.find(query, {"_id": 1}):
                fresh.first_seen(fresh.verified, fresh.awaiting.pop(doc["_id"]))
        await asyncio.sleep(0.01)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.coins: list[str] = args.coins
        self.namespace = f"bench-{uuid.uuid4().hex[:12]}"
        self.db_name = self.namespace.replace("-", "_")
        self.mongo = EmbeddedMongo(workdir / "mongo")
        self.mongo_process: Tracked | None = None
        self.broker_process: Tracked | None = None
        self.services: dict[str, Service] = {}
        self.timeline = Timeline()
        self.client: AsyncMongoClient[dict[str, Any]] | None = None
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.settings = bench_settings(args.amqp_url, self.namespace, self.coins)
        self.bulk_ceiling = 0.0
        self.fresh = Freshness(self.coins[: args.watch]) if args.live else None
        self.watchers: list[asyncio.Task[None]] = []
        self.own = OwnCommands()
        self.messages = Messages()
        # (the server's counts, the bench's own) at the ingestor's start and at the end
        self.ops_at: dict[str, tuple[Ops, Ops]] = {}

    # -- set-up ------------------------------------------------------------------------------

    def environment(self, gateway_port: int) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOCAST_")}
        env = keep | {
            "CRYPTOCAST_AMQP_URL": self.args.amqp_url,
            "CRYPTOCAST_MONGO_URL": self.mongo.url,
            "CRYPTOCAST_MONGO_DB": self.db_name,
            "CRYPTOCAST_NAMESPACE": self.namespace,
            "CRYPTOCAST_SYMBOLS": ",".join(self.coins),
            "CRYPTOCAST_INTERVAL": INTERVAL,
            "CRYPTOCAST_INTERVALS": ",".join([INTERVAL, *self.args.also]),
            "CRYPTOCAST_LOG_LEVEL": "INFO",
            "CRYPTOCAST_HEALTH_HOST": "127.0.0.1",
            "CRYPTOCAST_GATEWAY_HOST": "127.0.0.1",
            "CRYPTOCAST_GATEWAY_PORT": str(gateway_port),
            "CRYPTOCAST_GATEWAY_ACCESS_LOG": "false",
            "CRYPTOCAST_INFERENCE_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
            "CRYPTOCAST_INGESTOR_SOURCE": "replay",
            "CRYPTOCAST_INGESTOR_REPLAY_DIR": str(self.args.data_dir),
            "CRYPTOCAST_INGESTOR_BACKFILL": str(self.args.candles),
            "CRYPTOCAST_INGESTOR_REPLAY_LIVE": str(self.args.live),
            "CRYPTOCAST_INGESTOR_PACE_SECONDS": str(self.args.pace if self.args.live else 0),
        }
        if not self.args.baseline:
            env["CRYPTOCAST_INFERENCE_BASELINE"] = "false"
        return env

    async def start(self) -> None:
        try:
            connection = await aio_pika.connect(self.args.amqp_url, timeout=5)
        except Exception as exc:
            raise BenchFailure(
                f"RabbitMQ is not reachable at {self.args.amqp_url} ({exc!r}): start it "
                "(scripts/ensure-rabbitmq.sh) or set CRYPTOCAST_BENCH_AMQP_URL"
            ) from None
        await connection.close()
        with counted_nx(self.workdir):
            await self.mongo.astart()
        mongo_pid = int((self.mongo.data_dir / "nx-27017.pid").read_text().split()[0])
        self.mongo_process = Tracked("nx-27017", mongo_pid, self.mongo.data_dir / "nx-27017.log")
        local = urlparse(self.args.amqp_url).hostname in ("127.0.0.1", "localhost")
        broker = local_broker_pid() if local else None
        if broker is not None:  # shared: any other use of it in the run is counted too
            self.broker_process = Tracked("rabbitmq (shared)", broker, Path(os.devnull))
        self.client = AsyncMongoClient(
            self.mongo.url, serverSelectionTimeoutMS=5000, event_listeners=[self.own]
        )
        self.connection = await aio_pika.connect_robust(self.args.amqp_url, timeout=10)
        await self.messages.start(self.connection, self.settings)

        self.bulk_ceiling = await self.measure_bulk_ceiling()
        inference = [
            f"inference-{i}" if i > 1 else "inference" for i in range(1, self.args.replicas + 1)
        ]
        names = ("gateway", "verifier", *inference, "ingestor")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        gateway_port = ports["gateway"]
        env = self.environment(gateway_port)
        for name in names:
            port = ports[name]
            own = dict(env)
            if name != "gateway":
                own["CRYPTOCAST_HEALTH_PORT"] = str(port)
            self.services[name] = Service(name, own, self.workdir / f"{name}.log", port)

        consumers = [service for name, service in self.services.items() if name != "ingestor"]
        for service in consumers:
            service.start()
        deadline = time.monotonic() + self.args.ready_timeout
        async with httpx.AsyncClient() as http:
            while True:
                self.check_alive()
                if all([await service.ready(http) for service in consumers]):
                    break
                if time.monotonic() > deadline:
                    raise BenchFailure(
                        f"{', '.join(s.name for s in consumers)} not ready within "
                        f"{self.args.ready_timeout}s"
                    )
                await asyncio.sleep(0.2)
        if self.fresh is not None:
            await record_published(self.connection, self.settings, self.fresh)
            self.watchers = [
                asyncio.create_task(watch_served(f"http://127.0.0.1:{gateway_port}", self.fresh)),
                asyncio.create_task(poll_verified(self.client[self.db_name], self.fresh)),
            ]
        await self.count_ops("start")
        self.messages.counting = True
        self.services["ingestor"].start()
        self.timeline.ingestor_started = self.services["ingestor"].started_at

    async def count_ops(self, at: str) -> None:
        """The server's operation counts now, and the bench's own so far (this call's
        serverStatus included in both)."""
        assert self.client is not None
        status = await self.client.admin.command("serverStatus")
        self.ops_at[at] = (Ops.of_status(status), self.own.ops.copy())

    async def measure_bulk_ceiling(self) -> float:
        """Documents per second nx-27017 stores the way the gateway stores events (unordered
        bulk upserts of candle documents, one batch at a time), before the services start."""
        assert self.client is not None
        scratch = self.client[self.db_name]["bench_ceiling"]
        start = datetime(2020, 1, 1, tzinfo=UTC)
        documents = [
            to_document(
                Candle(
                    symbol="BTC",
                    interval=INTERVAL,
                    open_time=start + i * timedelta(hours=4),
                    close_time=start + (i + 1) * timedelta(hours=4),
                    open=100.0,
                    high=101.0,
                    low=99.0,
                    close=100.5,
                    volume=10.0,
                    source="bench",
                )
            )
            for i in range(CEILING_DOCUMENTS)
        ]
        began = time.monotonic()
        for at in range(0, len(documents), CEILING_BATCH):
            batch = documents[at : at + CEILING_BATCH]
            await scratch.bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch], ordered=False
            )
        rate = len(documents) / (time.monotonic() - began)
        await scratch.drop()
        return rate

    def check_alive(self) -> None:
        for service in self.services.values():
            code = service.exit_code()
            if service.process is not None and code is not None:
                raise BenchFailure(
                    f"{service.name} exited early with status {code}; its log:\n"
                    f"{tail(service.log, 60)}"
                )

    # -- observation -------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        assert self.client is not None
        db = self.client[self.db_name]
        # The collection's size (the count command), not count_documents, which scans every
        # document on nx-27017 (~0.1 s a sample at a few thousand): the gateway only
        # upserts events, so the two agree.
        return {c: await db[c].estimated_document_count() for c in COLLECTIONS}

    async def backlog(self) -> dict[str, int]:
        """Ready messages per service (work queues only); -1 where a queue is missing."""
        assert self.connection is not None
        depths: dict[str, int] = {}
        channel = await self.connection.channel()
        try:
            for service, queues in work_queues(self.settings).items():
                total = 0
                for name in queues:
                    try:
                        queue = await channel.declare_queue(name, passive=True)
                    except aio_pika.exceptions.ChannelClosed:
                        channel = await self.connection.channel()
                        total = -1
                        break
                    total += queue.declaration_result.message_count or 0
                depths[service] = total
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return depths

    async def try_backlog(self) -> dict[str, int]:
        """The backlog, or -1 for every service when the broker does not answer in time."""
        try:
            async with asyncio.timeout(10):
                return await self.backlog()
        except Exception:
            return dict.fromkeys(work_queues(self.settings), -1)

    async def dead_letters(self) -> int | None:
        """Messages in <ns>.dead; None if the broker did not say."""
        assert self.connection is not None
        try:
            async with asyncio.timeout(10):
                channel = await self.connection.channel()
                queue = await channel.declare_queue(self.settings.dead_letter_queue, passive=True)
                with contextlib.suppress(Exception):
                    await channel.close()
                return queue.declaration_result.message_count or 0
        except Exception:
            return None

    def replay_done(self) -> bool:
        log = self.services["ingestor"].log
        return log.exists() and '"msg": "replay finished"' in log.read_text(errors="replace")

    def tracked(self) -> list[Tracked]:
        extra = [p for p in (self.mongo_process, self.broker_process) if p is not None]
        return [*self.services.values(), *extra]

    async def observe(self) -> None:
        """Sample until the replay is published, every queue is empty and no count has
        changed for ``--quiet`` seconds."""
        t = self.timeline
        last_progress = last_backlog = 0.0
        backlog: dict[str, int] = {}
        while True:
            self.check_alive()
            now = time.monotonic()
            try:
                counts = await self.counts()
            except Exception as exc:
                raise BenchFailure(f"nx-27017 did not answer a count: {exc!r}") from None
            for process in self.tracked():
                process.sample()
            t.samples += 1
            if t.first_candle is None and counts["candles"]:
                t.first_candle = now
                for process in self.tracked():
                    process.at_first_candle = process.last
            for name, count in counts.items():
                if count != t.counts[name]:
                    t.counts[name] = count
                    t.changed[name] = now
            if t.replay_finished is None and self.replay_done():
                t.replay_finished = now
            if now - last_backlog >= 1.0 or t.replay_finished is not None:
                backlog = await self.try_backlog()
                last_backlog = now
                for service, depth in backlog.items():
                    t.peak_backlog[service] = max(t.peak_backlog.get(service, 0), depth)
                drained = t.first_candle is not None and not any(backlog.values())
                if self.fresh is not None and self.fresh.settled is None and drained:
                    self.fresh.settled = now
            if now - last_progress >= 10:
                last_progress = now
                print(
                    f"[{now - t.ingestor_started:6.1f}s] stored "
                    + ", ".join(f"{c} {n}" for c, n in counts.items())
                    + f"; waiting {backlog}"
                    + ("; replay published" if t.replay_finished else ""),
                    file=sys.stderr,
                    flush=True,
                )
            last_change = max(t.changed.values(), default=t.ingestor_started)
            if (
                t.replay_finished is not None
                and not any(backlog.values())
                and counts["verifications"]
                and now - last_change >= self.args.quiet
            ):
                self.messages.counting = False
                await self.count_ops("end")
                return
            if now - last_change > self.args.stall:
                raise BenchFailure(
                    f"nothing stored for {self.args.stall}s (stored {counts}, waiting "
                    f"{backlog}, replay {'published' if t.replay_finished else 'not published'})"
                )
            if now - t.ingestor_started > self.args.timeout:
                raise BenchFailure(f"not finished within {self.args.timeout}s (stored {counts})")
            await asyncio.sleep(self.args.sample)

    # -- the figures -------------------------------------------------------------------------

    def ingestor_publish_rate(self) -> int | None:
        """The ingestor's own figure for its last backfill batch: candles published per s."""
        text = self.services["ingestor"].log.read_text(errors="replace")
        rates = re.findall(r'"msg": "backfill progress".*?"per_second": (\d+)', text)
        return int(rates[-1]) if rates else None

    async def roles(self) -> dict[str, int]:
        assert self.client is not None
        predictions = self.client[self.db_name]["predictions"]
        found: dict[str, int] = {}
        async for row in await predictions.aggregate(
            [{"$group": {"_id": "$role", "n": {"$sum": 1}}}]
        ):
            found[str(row["_id"])] = int(row["n"])
        return dict(sorted(found.items()))

    async def operations(self) -> dict[str, Any]:
        """Per candle stored, from the ingestor's start to the end of the run: the
        services' database operations (the server's counts less the bench's own) and the
        broker's messages."""
        candles = self.timeline.counts["candles"]
        (server_start, own_start), (server_end, own_end) = self.ops_at["start"], self.ops_at["end"]
        services = server_end.minus(server_start).minus(own_end.minus(own_start))
        requests = {n: c for n, c in services.requests.items() if c}
        # The server's seconds per command and collection, for the commands the services
        # sent (the bench's counts are its own; in --live, its reads of verifications too).
        spent = sorted(
            ((w, n, s) for w, (n, s) in services.seconds.items() if requests.get(w.split()[0])),
            key=lambda row: -row[2],
        )
        bindings = await asyncio.to_thread(
            exchange_bindings, self.settings.exchange, self.namespace
        )
        published = self.messages.published()
        delivered = None if bindings is None else self.messages.delivered(bindings)

        def per_candle(n: int) -> float:
            return round(n / candles, 2)

        return {
            "db_ops": services.kinds,
            "db_ops_per_candle": {k: per_candle(n) for k, n in services.kinds.items()},
            "db_ops_per_candle_total": per_candle(sum(services.kinds.values())),
            "db_requests": dict(sorted(requests.items(), key=lambda r: -r[1])),
            "db_requests_per_candle": per_candle(sum(requests.values())),
            "db_seconds": {w: {"n": n, "s": round(s, 2)} for w, n, s in spent if n},
            "published": published,
            "published_per_candle": per_candle(sum(published.values())),
            "delivered": delivered,
            "delivered_per_candle": None
            if delivered is None
            else per_candle(sum(delivered.values())),
        }

    async def report(self) -> dict[str, Any]:
        t = self.timeline
        assert t.first_candle is not None
        start = t.first_candle
        counts = t.counts

        def since_first(name: str) -> float:
            return round(t.changed[name] - start, 2)

        last_any = max(t.changed.values())
        total_s = last_any - start
        to_predictions = since_first("predictions")
        to_verifications = since_first("verifications")
        shortest = MIN_SAMPLES * self.args.sample

        def rate(count: int, seconds: float) -> float | None:
            """Per second, or None over a time too short for the sampling to resolve."""
            return round(count / seconds, 1) if seconds >= shortest else None

        processes = {}
        for process in self.tracked():
            usage, before = process.last, process.at_first_candle
            if usage is None:
                continue
            processes[process.name] = {
                "pid": process.pid,
                "cpu_s": round(usage.cpu_seconds, 2),
                "cpu_s_run": round(usage.cpu_seconds - (before.cpu_seconds if before else 0), 2),
                "peak_rss_mb": round(usage.peak_rss_mb, 1),
            }
        return {
            "bench": "pipeline",
            "coins": len(self.coins),
            "candles_per_coin": self.args.candles,
            "intervals": [INTERVAL, *self.args.also],
            "baseline": self.args.baseline,
            "cores": os.cpu_count(),
            "candles": counts["candles"],
            "predictions": counts["predictions"],
            "verifications": counts["verifications"],
            "predictions_by_role": await self.roles(),
            "dead_letters": await self.dead_letters(),
            "ingestor_startup_s": round(start - t.ingestor_started, 2),
            "publish_s": round((t.replay_finished or start) - start, 2),
            "ingestor_publish_per_s": self.ingestor_publish_rate(),
            "to_last_prediction_s": to_predictions,
            "to_last_verification_s": to_verifications,
            "to_last_verification_from_ingestor_start_s": round(
                t.changed["verifications"] - t.ingestor_started, 2
            ),
            "total_s": round(total_s, 2),
            "candles_per_s": rate(counts["candles"], total_s),
            "documents_per_s": rate(sum(counts.values()), total_s),
            "mongo_ceiling_documents_per_s": round(self.bulk_ceiling, 1),
            "inference_replicas": self.args.replicas,
            "freshness": self.fresh.summary(self.args.live) if self.fresh else None,
            "predictions_per_s": rate(counts["predictions"], to_predictions),
            "verifications_per_s": rate(counts["verifications"], to_verifications),
            "peak_waiting": t.peak_backlog,
            "operations": await self.operations(),
            "sample_s": self.args.sample,
            "processes": processes,
        }

    # -- tear-down ---------------------------------------------------------------------------

    async def close(self) -> None:
        for watcher in self.watchers:
            watcher.cancel()
        for ended in await asyncio.gather(*self.watchers, return_exceptions=True):
            if not isinstance(ended, asyncio.CancelledError):
                print(f"warning: a freshness watcher failed: {ended!r}", file=sys.stderr)
        for service in reversed(self.services.values()):
            await service.stop()
        if self.client is not None:
            await self.client.close()
        await asyncio.to_thread(self.mongo.stop)
        if self.connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await self.connection.close()
        await delete_namespace(self.args.amqp_url, self.settings)

    def tails(self) -> str:
        parts = [
            f"---- {p.name} ({p.log}) ----\n{tail(p.log, 8 if p.name == 'nx-27017' else 30)}"
            for p in self.tracked()
            if p is not self.broker_process
        ]
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Output


def per_second(rate: float | None) -> str:
    return f"too short to time (under {MIN_SAMPLES} samples)" if rate is None else str(rate)


def markdown(result: dict[str, Any]) -> str:
    roles = ", ".join(f"{role} {n}" for role, n in result["predictions_by_role"].items())
    rows = [
        ("coins × candles per coin", f"{result['coins']} × {result['candles_per_coin']}"),
        ("inference replicas", str(result["inference_replicas"])),
        (
            "stored candles / predictions / verifications",
            f"{result['candles']} / {result['predictions']} / {result['verifications']}",
        ),
        ("predictions by role", roles or "-"),
        ("dead letters", str(result["dead_letters"])),
        ("ingestor start-up (start to first candle stored)", f"{result['ingestor_startup_s']} s"),
        (
            "replay published (ingestor)",
            f"{result['publish_s']} s ({result['ingestor_publish_per_s']} candles/s)",
        ),
        ("to the last prediction", f"{result['to_last_prediction_s']} s"),
        ("to the last verification", f"{result['to_last_verification_s']} s"),
        ("to the last document (end to end)", f"{result['total_s']} s"),
        ("**candles/s end to end**", f"**{per_second(result['candles_per_s'])}**"),
        ("documents stored/s end to end", per_second(result["documents_per_s"])),
        (
            "nx-27017 alone: bulk upserts/s (the ceiling)",
            str(result["mongo_ceiling_documents_per_s"]),
        ),
        ("predictions/s", per_second(result["predictions_per_s"])),
        ("verifications/s", per_second(result["verifications_per_s"])),
        (
            "most messages waiting per service",
            ", ".join(f"{s} {n}" for s, n in result["peak_waiting"].items()),
        ),
    ]
    ops = result["operations"]
    db = ops["db_ops_per_candle"]
    delivered = ops["delivered"]
    rows += [
        (
            "database operations per candle (opcounters)",
            f"{ops['db_ops_per_candle_total']}: "
            + ", ".join(f"{kind} {db[kind]}" for kind in OP_KINDS),
        ),
        (
            "database requests (round trips) per candle",
            f"{ops['db_requests_per_candle']}: "
            + ", ".join(f"{name} {n}" for name, n in list(ops["db_requests"].items())[:6]),
        ),
        (
            "database server's time by request (seconds, requests)",
            ", ".join(f"{w} {t['s']} s ({t['n']})" for w, t in list(ops["db_seconds"].items())[:6])
            or "-",
        ),
        (
            "broker messages published per candle",
            f"{ops['published_per_candle']}: "
            + ", ".join(f"{kind} {n}" for kind, n in ops["published"].items()),
        ),
        (
            "broker deliveries per candle (copies routed to the services' queues)",
            "unknown (no rabbitmqctl)"
            if delivered is None
            else f"{ops['delivered_per_candle']}: "
            + ", ".join(f"{queue} {n}" for queue, n in delivered.items() if n),
        ),
    ]
    if result["freshness"]:
        fresh = result["freshness"]
        for name, label in (
            ("to_predicted", "the prediction on the bus"),
            ("to_served", "GET /<coin>"),
            ("to_verified", "verdict stored"),
        ):
            d = fresh[name]
            figures = (
                f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, max {d['max_ms']} ms"
                if d["n"]
                else "none seen"
            )
            rows.append(
                (
                    f"freshness: publish to {label} ({', '.join(fresh['coins'])}, "
                    f"{fresh['live_steps_measured']} live steps)",
                    f"{figures} (n {d['n']}, missing {d['missing']})",
                )
            )
    lines = ["| measure | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += [
        "",
        "| process | CPU s (total) | CPU s (from first candle) | peak RSS MB |",
        "|---|---:|---:|---:|",
    ]
    for name, p in result["processes"].items():
        lines.append(f"| {name} | {p['cpu_s']} | {p['cpu_s_run']} | {p['peak_rss_mb']} |")
    lines += [
        "",
        f"Times are from the first candle stored, sampled every {result['sample_s']} s, on "
        f"{result['cores']} cores; the baseline is {'on' if result['baseline'] else 'off'}.",
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    available = sorted(p.name.split("_")[0] for p in DATA.glob(f"*_{INTERVAL}.csv.gz"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--candles", type=int, default=300, help="backfill candles per coin")
    parser.add_argument(
        "--coins",
        type=lambda v: [symbol_of(c.strip()) for c in v.split(",") if c.strip()],
        default=available,
        help="comma-separated coins (default: every bundled one)",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA, help="replay folder")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="CRYPTOCAST_INFERENCE_BASELINE=false (default: the service's default, on)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="inference processes")
    parser.add_argument(
        "--also",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=[],
        help="more intervals, built from the 4h candles: 1d gives each coin a daily series",
    )
    parser.add_argument(
        "--live",
        type=int,
        default=0,
        help="after the backfill, replay this many steps at --pace and measure freshness",
    )
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between live steps")
    parser.add_argument("--watch", type=int, default=4, help="coins whose freshness is measured")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--quiet", type=float, default=5.0, help="no change for this long: done")
    parser.add_argument("--stall", type=float, default=120.0, help="no change for this long: fail")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds for the whole run")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    parser.add_argument(
        "--delete-namespace",
        metavar="NAMESPACE",
        help="only delete a namespace a killed run left on the broker (with --coins)",
    )
    args = parser.parse_args(argv)
    missing = [c for c in args.coins if not (args.data_dir / f"{c}_{INTERVAL}.csv.gz").exists()]
    if missing or not args.coins:
        parser.error(f"no {INTERVAL} data in {args.data_dir} for {missing or 'no coins'}")
    if args.delete_namespace and not args.delete_namespace.startswith("bench-"):
        parser.error("--delete-namespace only deletes this bench's namespaces (bench-...)")
    if args.candles < 2:
        parser.error("--candles must be at least 2")
    if args.replicas < 1 or args.live < 0 or args.pace <= 0 or args.watch < 1:
        parser.error("--replicas and --watch must be at least 1, --live at least 0, --pace above 0")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.delete_namespace:
        settings = bench_settings(args.amqp_url, args.delete_namespace, args.coins)
        return 0 if await delete_namespace(args.amqp_url, settings) else 1
    workdir = Path(tempfile.mkdtemp(prefix="cryptocast-bench-pipeline-"))
    bench = Bench(args, workdir)
    print(
        f"bench-pipeline: {len(args.coins)} coins × {args.candles} candles, namespace "
        f"{bench.namespace}, logs in {workdir}",
        file=sys.stderr,
        flush=True,
    )
    failed = False
    try:
        await bench.start()
        await bench.observe()
        result = await bench.report()
    except BenchFailure as failure:
        failed = True
        print(f"bench-pipeline failed: {failure}\n{bench.tails()}", file=sys.stderr)
    except BaseException:
        failed = True
        print(f"bench-pipeline interrupted; logs:\n{bench.tails()}", file=sys.stderr)
        raise
    finally:
        await bench.close()
        if args.keep or failed:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        return 1
    print(markdown(result))
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
