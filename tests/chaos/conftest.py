"""Fixtures of the chaos tier: one throwaway RabbitMQ node and one nx-27017 for the session,
a pipeline of four service processes per test on a namespace and database of its own, and
the results table printed at the end (and written to .chaos/table.md)."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import (
    RESULTS,
    ROOT,
    KillableMongo,
    Pipeline,
    RabbitNode,
    Replay,
)

TABLE = ROOT / ".chaos" / "table.md"
# Service logs of the last run, one folder per test (pytest's shared tmp folders are
# rotated away by other test sessions on the same machine).
LOGS = ROOT / ".chaos" / "logs"
# The harness's own probes of a broker that is down on purpose: not worth a log line each.
logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitNode]:
    node = RabbitNode(Path(tempfile.mkdtemp(prefix="cryptocast-chaos-rabbitmq-")))
    try:
        node.start_sync()
        yield node
    finally:
        RESULTS.broker_starts = list(node.start_seconds)
        node.cleanup()


@pytest.fixture(scope="session")
def mongo() -> Iterator[KillableMongo]:
    data = Path(tempfile.mkdtemp(prefix="cryptocast-chaos-mongo-"))
    server = KillableMongo(data)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def log_root() -> Path:
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    (LOGS.parent / ".gitignore").write_text("*\n")  # results of a run, never committed
    return LOGS


@pytest.fixture
async def pipelines(
    rabbit: RabbitNode, mongo: KillableMongo, request: pytest.FixtureRequest, log_root: Path
) -> AsyncIterator[Callable[[Replay], Pipeline]]:
    """Build pipelines for this test; every one is stopped and removed afterwards, with the
    tails of its logs printed if the test failed."""
    # A previous test may have ended with the broker or the database down.
    if not rabbit.running():
        await rabbit.start()
    if not mongo.running():
        await mongo.astart()
    made: list[Pipeline] = []

    def make(replay: Replay) -> Pipeline:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        pipeline = Pipeline(rabbit, mongo, replay, log_root / f"{name}.{len(made)}")
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        if request.node.stash.get(FAILED, False):
            print(f"\n==== logs of {pipeline.namespace} (in {pipeline.log_dir}) ====")
            print(pipeline.tails())
        await pipeline.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS.rows:
        return
    starts = RESULTS.broker_starts
    lines = [RESULTS.table(), ""]
    if starts:
        restarts = starts[1:]
        lines.append(
            f"RabbitMQ node start: {starts[0]:.1f} s"
            + (
                f"; restarts on the same data: {min(restarts):.1f}-{max(restarts):.1f} s "
                f"(mean {sum(restarts) / len(restarts):.1f} s over {len(restarts)})"
                if restarts
                else ""
            )
        )
    if RESULTS.baseline_wall is not None:
        lines.append(
            f"Fault-free replay: {RESULTS.baseline_wall:.1f} s until everything expected was stored"
        )
    notes = RESULTS.notes()
    if notes:
        lines += ["", notes]
    text = "\n".join(lines)
    terminalreporter.write_sep("=", "chaos results")
    terminalreporter.write_line(text)
    TABLE.parent.mkdir(exist_ok=True)
    (TABLE.parent / ".gitignore").write_text("*\n")  # results of a run, never committed
    TABLE.write_text(text + "\n")
    terminalreporter.write_line(f"(written to {TABLE.relative_to(ROOT)})")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos tier's marker (tests/conftest.py marks the other tiers by folder)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.chaos)
