"""Throughput and latency of the two hot reads (GET /btc and GET
/api/v1/predictions/btc/latest) on one gateway process, beside bare FastAPI serving /btc.

    .venv/bin/python bench/gateway.py [--seconds 15] [--connections 64]

Needs wrk (apt-get install wrk). Each server runs alone in its own process with uvicorn,
uvloop and httptools; wrk runs with 2 threads on the same machine. The gateway is the real
`cryptocast-gateway` entry point with its production middleware (CORS, Prometheus metrics,
access log, body limit, rate limit set high enough not to throttle the load client), the
embedded MongoDB and an in-memory bus. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from cryptocast.embedded_mongo import EmbeddedMongo, free_port

BARE_APPS = """
from fastapi import FastAPI, Response

PAYLOAD = {"_id": "prediction:bench", "currentPrice": "$64,603.00",
           "predictedPrice": "$64,820.00", "priceChange": "\\u25b2 $217.00 (0.34%)",
           "trend": "Bullish", "timestamp": "2026-08-06T00:00:00+00:00",
           "timestamp_display": "Thursday, August 6th, at 00:00",
           "raw_data": {"last_actual_close": 64603.0, "predicted_close": 64820.0,
                        "change_dollars": 217.0, "change_percent": 0.34}}
BODY = __import__("json").dumps(PAYLOAD).encode()
returns_dict = FastAPI()
returns_bytes = FastAPI()


@returns_dict.get("/btc")
async def as_dict():
    return PAYLOAD


@returns_bytes.get("/btc")
async def as_bytes():
    return Response(BODY, media_type="application/json")
"""


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * units[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": latency("50%"),
        "p99": latency("99%"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def serve(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, env={**os.environ, **env}, stdout=sink, stderr=sink)


@contextlib.contextmanager
def running_gateway(
    venv: Path, mongo_url: str, work: Path, access_log: str = "false"
) -> Iterator[str]:
    """A gateway process with one prediction recorded for BTC; yields its base URL."""
    port, key = free_port(), "bench-key"
    env = {
        "CRYPTOCAST_MONGO_URL": mongo_url,
        "CRYPTOCAST_GATEWAY_PORT": str(port),
        "CRYPTOCAST_GATEWAY_API_KEYS": key,
        "CRYPTOCAST_GATEWAY_ACCESS_LOG": access_log,
        "CRYPTOCAST_GATEWAY_RATE_LIMIT_PER_MINUTE": "1000000000",
    }
    process = serve([str(venv / "cryptocast-gateway")], env, work / "gateway.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz")
        httpx.post(
            f"{base}/record/btc",
            headers={"X-API-Key": key},
            json={"last_actual_close": 64603.0, "predicted_close": 64820.0},
        )
        assert httpx.get(f"{base}/btc").json()["currentPrice"] == "$64,603.00"
        yield base
    finally:
        process.terminate()
        process.wait()


HOT_PATHS = ("/btc", "/api/v1/predictions/btc/latest")


def measure_gateway(
    venv: Path, mongo_url: str, access_log: str, work: Path, args: argparse.Namespace
) -> list[tuple[str, dict[str, float]]]:
    """wrk against each hot path of one gateway process, in turn."""
    with running_gateway(venv, mongo_url, work, access_log) as base:
        return [(path, wrk(f"{base}{path}", args.seconds, args.connections)) for path in HOT_PATHS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cryptocast-bench-"))
    (work / "bare_apps.py").write_text(BARE_APPS)
    venv = Path(sys.executable).parent
    rows = []

    uvicorn = [
        str(venv / "uvicorn"),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        str(work),
    ]
    for label, target in (
        ("bare FastAPI returning a dict", "bare_apps:returns_dict"),
        ("bare FastAPI returning bytes", "bare_apps:returns_bytes"),
    ):
        port = free_port()
        process = serve([*uvicorn, "--port", str(port), target], {}, work / "bare.log")
        try:
            wait_until_up(f"http://127.0.0.1:{port}/btc")
            rows.append(
                (label, "/btc", wrk(f"http://127.0.0.1:{port}/btc", args.seconds, args.connections))
            )
        finally:
            process.terminate()
            process.wait()

    mongo = EmbeddedMongo(work / "mongo")
    mongo.start()
    try:
        for access_log in ("true", "false"):
            label = (
                f"CryptoCast gateway, production middleware, access log "
                f"{'on' if access_log == 'true' else 'off'}"
            )
            rows += [
                (label, path, result)
                for path, result in measure_gateway(venv, mongo.url, access_log, work, args)
            ]
    finally:
        mongo.stop()

    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, one server process")
    print("| server | GET | requests/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---:|---:|---:|---:|")
    for label, path, result in rows:
        print(
            f"| {label} | {path} | {result['rps']:,.0f} | {result['p50']:.2f} "
            f"| {result['p99']:.2f} | {result['errors']:.0f} |"
        )


if __name__ == "__main__":
    main()
