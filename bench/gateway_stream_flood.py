"""GET /btc latency while 500 WebSocket clients connect to /api/v1/stream at once.

    .venv/bin/python bench/gateway_stream_flood.py [--clients 500] [--addresses 50]

The gateway is the real `cryptocast-gateway` entry point (production middleware, embedded
MongoDB, in-memory bus, its default stream caps) in a process of its own. This process
sends GET /btc one after another on a keep-alive connection, and meanwhile opens
``--clients`` WebSocket connections all at once from ``--addresses`` loopback addresses
(127.0.0.2, 127.0.0.3, ...), holding them open. Prints the GET /btc latency percentiles
measured while the flood connects and is held, and how many streams were admitted and
how many refused (close code 1013).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from cryptocast.embedded_mongo import EmbeddedMongo

sys.path.insert(0, str(Path(__file__).parent))
from gateway import running_gateway  # bench/ is not a package


async def stream_client(url: str, source: str, hold: asyncio.Event) -> str:
    try:
        async with websockets.connect(url, local_addr=(source, 0), open_timeout=30) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 0.5)  # a refusal closes at once
            except TimeoutError:
                await hold.wait()
                return "admitted"
            except websockets.ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"
            return "admitted"
    except Exception as error:  # the benchmark reports every outcome
        return type(error).__name__


async def flood(base: str, ws_url: str, clients: int, addresses: int) -> None:
    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=base) as http:
            while not done.is_set():
                started = time.perf_counter()
                response = await http.get("/btc")
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200

    prober = asyncio.create_task(probe())
    await asyncio.sleep(1)  # a baseline before the flood
    baseline = len(latencies)
    hold = asyncio.Event()
    connecting = [
        asyncio.create_task(stream_client(ws_url, f"127.0.0.{2 + i % addresses}", hold))
        for i in range(clients)
    ]
    await asyncio.sleep(5)  # the flood connects and is held open
    hold.set()
    outcomes = await asyncio.gather(*connecting)
    done.set()
    await prober
    during = sorted(latencies[baseline:])
    quantile = statistics.quantiles(during, n=100)
    print(
        f"{clients} WebSocket clients from {addresses} addresses at once: "
        + ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes)))
    )
    print(
        f"GET /btc during the flood: {len(during)} requests, p50 {quantile[49]:.2f} ms, "
        f"p99 {quantile[98]:.2f} ms, max {during[-1]:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--addresses", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cryptocast-bench-"))
    venv = Path(sys.executable).parent
    mongo = EmbeddedMongo(work / "mongo")
    mongo.start()
    try:
        with running_gateway(venv, mongo.url, work) as base:
            port = base.rsplit(":", 1)[1]
            asyncio.run(
                flood(base, f"ws://127.0.0.1:{port}/api/v1/stream", args.clients, args.addresses)
            )
    finally:
        mongo.stop()


if __name__ == "__main__":
    main()
