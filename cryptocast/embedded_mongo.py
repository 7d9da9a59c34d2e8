"""An embedded MongoDB wire server (nx-27017, SQLite-backed) as a subprocess on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each stays bound until all are chosen, so the same one
    is never handed out twice (as asking one at a time can, once a port is released)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class EmbeddedMongo:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> None:
        executable = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # nx-27017 logs to stderr as well as to --log-file: keep the stderr copy only, so
        # that start-up crashes land in the same file.
        with (self.data_dir / "nx-27017.log").open("ab") as log_file:
            self._process = subprocess.Popen(
                [
                    executable,
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--log-file",
                    os.devnull,
                    "--pid-file",
                    str(self.data_dir / "nx-27017.pid"),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nx-27017 exited with {self._process.returncode}; see "
                    f"{self.data_dir / 'nx-27017.log'}"
                )
            client: MongoClient[dict[str, object]]
            with (
                contextlib.suppress(PyMongoError),
                MongoClient(self.url, serverSelectionTimeoutMS=300) as client,
            ):
                client.admin.command("ping")
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nx-27017 did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)
