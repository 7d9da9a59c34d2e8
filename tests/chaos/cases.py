"""Running one chaos case: start the pipeline, inject the fault, wait (bounded) for the
outcome, record a row of the results table, and list every way the outcome is wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.chaos.harness import (
    COLLECTIONS,
    RESULTS,
    Pipeline,
    Row,
    Snapshot,
    Stored,
    poll,
)

OUTAGE_SECONDS = 10.0  # how long the broker or the database stays dead: a deliberate sleep
ERROR_NEEDLES = (
    '"level": "ERROR"',
    '"level": "CRITICAL"',
    "Traceback",
    '"handler failed"',
    "Task exception was never retrieved",
    "dead-lettering",
)


@dataclass
class FaultReport:
    ended_at: float | None = None  # monotonic time the fault ended (restart done)
    before: Stored | None = None  # what was stored when it hit
    note: str = ""
    problems: list[str] = field(default_factory=list)


Fault = Callable[[Pipeline], Awaitable[FaultReport]]


@dataclass
class CaseResult:
    row: Row
    snapshot: Snapshot
    wall: float | None  # ingestor start until everything expected was stored
    problems: list[str]

    def assert_ok(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def _per_collection(values: dict[str, int]) -> str:
    return "/".join(str(values[c]) for c in COLLECTIONS)


async def run_case(
    pipeline: Pipeline,
    name: str,
    fault: Fault | None = None,
    *,
    dead_expected: int | None = 0,
    recovery_within: float = 60.0,
    settle_within: float = 30.0,
    stall: float = 15.0,
    stop_at_end: bool = True,
) -> CaseResult:
    """``dead_expected``: messages the dead-letter queue must hold at the end (None: the
    caller checks them). ``stop_at_end``: then SIGTERM every service, each must exit 0
    whatever it went through."""
    row = Row(fault=name, expected=pipeline.expected.counts())
    RESULTS.rows.append(row)
    problems: list[str] = []
    await pipeline.start()
    try:
        report = await fault(pipeline) if fault else FaultReport()
    except BaseException as exc:
        row.note = f"the fault could not be injected: {str(exc).splitlines()[0][:200]}"
        raise
    problems += report.problems
    row.note = report.note
    if report.ended_at is not None:
        recovery = await pipeline.wait_recovered(report.ended_at, report.before, recovery_within)
        row.recovery = (
            f"{recovery:.1f}" if recovery is not None else f"none in {recovery_within:.0f}"
        )
        if recovery is None:
            states = {
                n: (s.alive(), await s.ready(pipeline.http)) for n, s in pipeline.services.items()
            }
            problems.append(
                f"no recovery within {recovery_within:.0f}s of the fault's end: "
                f"(alive, ready) per service {states}, and no new verification"
            )
    else:
        row.recovery = "n/a"
    # The replay itself: backfill and paced steps, plus restarts; generous but bounded.
    if not await pipeline.wait_for_replay(pipeline.replay.paced_seconds + 120):
        problems.append("the ingestor never logged 'replay finished'")
    done_at = await pipeline.wait_for_expected(stall=stall)
    wall = done_at - pipeline.ingestor_started_at if done_at is not None else None
    # Stuck for long already: a short look at what is left is enough.
    snapshot = await pipeline.settle(settle_within if done_at is not None else 8.0)
    problems += outcome_problems(pipeline, snapshot, row, dead_expected)
    if stop_at_end:
        problems += [
            f"{name} exited with {code} on SIGTERM at the end, expected 0"
            for name, code in (await pipeline.stop()).items()
            if code != 0
        ]
    row.outcome = "pass" if not problems else "FAIL"
    return CaseResult(row, snapshot, wall, problems)


def outcome_problems(
    pipeline: Pipeline, snapshot: Snapshot, row: Row, dead_expected: int | None
) -> list[str]:
    problems = []
    stored, expected = snapshot.stored, pipeline.expected
    missing, unexpected = stored.missing(expected), stored.unexpected(expected)
    duplicates = stored.duplicates()
    row.stored = stored.counts()
    row.missing = _per_collection({c: len(missing[c]) for c in COLLECTIONS})
    row.duplicates = _per_collection(duplicates)
    row.dead_lettered = str(snapshot.dead)
    for collection in COLLECTIONS:
        if missing[collection]:
            problems.append(
                f"{collection}: {len(missing[collection])} of "
                f"{len(expected.of(collection))} missing, e.g. "
                f"{missing[collection][:3]}"
            )
        if unexpected[collection]:
            problems.append(
                f"{collection}: {len(unexpected[collection])} not expected, e.g. "
                f"{unexpected[collection][:3]}"
            )
        if duplicates[collection]:
            problems.append(f"{collection}: {duplicates[collection]} duplicates")
    if dead_expected is not None and snapshot.dead != dead_expected:
        problems.append(
            f"dead-letter queue holds {snapshot.dead} messages, expected {dead_expected}"
        )
    busy = {name: depth for name, depth in snapshot.queues.items() if depth}
    if busy:
        problems.append(f"messages still waiting in the queues at the end: {busy}")
    for name, service in pipeline.services.items():
        if not service.alive():
            code = service.process.returncode if service.process else None
            problems.append(f"{name} is not running at the end (exit code {code})")
    if problems:
        evidence = [line for needle in ERROR_NEEDLES for line in pipeline.log_lines(needle, 3)]
        if evidence:
            problems.append("log lines:\n  " + "\n  ".join(evidence[:15]))
        row.note = "; ".join(filter(None, [row.note, problems[0][:160]]))
    return problems


# ---------------------------------------------------------------------------------------------
# Faults


async def wait_for(
    pipeline: Pipeline, check: Callable[[], Awaitable[bool]], what: str, within: float = 90.0
) -> None:
    if not await poll(check, within):
        raise AssertionError(f"timed out after {within}s waiting for {what}\n{pipeline.tails()}")


def paced_step(pipeline: Pipeline, offset: int) -> int:
    """Index of a step in the paced part of the replay."""
    index = pipeline.replay.backfill_steps + offset
    assert index < len(pipeline.replay.steps()), "the replay has too few paced steps"
    return index


async def candles_of_step_stored(pipeline: Pipeline, index: int) -> bool:
    stored = await pipeline.try_stored()
    step = {c.event_id for c in pipeline.replay.steps()[index]}
    return stored is not None and step <= set(stored.ids["candles"])


async def wait_until_idle(pipeline: Pipeline, first: int) -> tuple[int, dict[str, int | None]]:
    """Between two paced steps with everything processed: step ``k`` (from ``first`` on)
    has gone through, step ``k + 1`` is not out yet and no queue has a message ready. A
    window that is missed is tried again at the next step."""
    for index in range(first, len(pipeline.replay.steps()) - 1):

        async def settled_or_missed(i: int = index) -> str | None:
            if await candles_of_step_stored(pipeline, i + 1):
                return "missed"
            if not await pipeline.step_processed(i):
                return None
            depths = await pipeline.try_queue_depths()
            if depths is None or any(v for k, v in depths.items() if k != "dead"):
                return None
            return "idle"

        state = await poll(settled_or_missed, 60.0, every=0.05)
        if state == "idle":
            depths = await pipeline.queue_depths()
            return index, depths
        if state is None:
            raise AssertionError(f"step {index} never went through\n{pipeline.tails()}")
    raise AssertionError("no idle moment between paced steps: lengthen the pace")


async def wait_until_busy(pipeline: Pipeline) -> dict[str, int | None]:
    """During the backfill burst: the first predictions are stored, the backfill's
    verifications are not all stored yet."""
    backfill = {
        c.event_id
        for step in pipeline.replay.steps()[: pipeline.replay.backfill_steps]
        for c in step
    }
    last = [
        v
        for v in pipeline.expected.verifications
        if any(v.endswith(c.split(":", 3)[3]) for c in backfill)
    ]

    async def predicting() -> Stored | None:
        stored = await pipeline.try_stored()
        return stored if stored is not None and stored.ids["predictions"] else None

    stored = await poll(predicting, 60.0, every=0.02)
    if stored is None:
        raise AssertionError(f"no prediction within 60s\n{pipeline.tails()}")
    depths = await pipeline.try_queue_depths() or {}
    if set(last) <= set(stored.ids["verifications"]):
        raise AssertionError(
            "the backfill was through before the consumers were caught busy: lengthen the backfill"
        )
    return depths


def broker_outage(moment: str) -> Fault:
    async def fault(pipeline: Pipeline) -> FaultReport:
        if moment == "busy":
            depths = await wait_until_busy(pipeline)
            note = f"killed during the backfill with ready messages {depths}"
        else:
            index, depths = await wait_until_idle(pipeline, paced_step(pipeline, 2))
            note = f"killed after paced step {index - pipeline.replay.backfill_steps}, queues empty"
        before = await pipeline.stored()
        pipeline.rabbit.kill()
        await asyncio.sleep(OUTAGE_SECONDS)
        seconds = await pipeline.rabbit.start()
        return FaultReport(
            ended_at=time.monotonic(), before=before, note=f"{note}; broker back in {seconds:.1f}s"
        )

    return fault


async def database_outage(pipeline: Pipeline) -> FaultReport:
    index = paced_step(pipeline, 2)
    await wait_for(pipeline, lambda: candles_of_step_stored(pipeline, index), f"paced step {index}")
    before = await pipeline.stored()
    pipeline.mongo.kill()
    await asyncio.sleep(OUTAGE_SECONDS)
    await pipeline.mongo.astart()
    return FaultReport(
        ended_at=time.monotonic(),
        before=before,
        note="killed mid-replay, after paced step 2 was stored",
    )


def service_stop(name: str, how: str) -> Fault:
    async def fault(pipeline: Pipeline) -> FaultReport:
        index = paced_step(pipeline, 2)
        await wait_for(
            pipeline, lambda: candles_of_step_stored(pipeline, index), f"paced step {index}"
        )
        before = await pipeline.stored()
        service = pipeline.services[name]
        problems = []
        if how == "SIGKILL":
            service.kill()
        else:
            code = await service.terminate(30)
            if code != 0:
                problems.append(
                    f"{name} exited with {code} on SIGTERM, expected 0"
                    if code is not None
                    else f"{name} did not exit within 30s of SIGTERM (killed)"
                )
            elif '"msg": "service stopped"' not in service.log_text():
                problems.append(f"{name} exited 0 on SIGTERM without logging 'service stopped'")
        if name == "ingestor":
            pipeline.start_ingestor()  # the replay starts over
        else:
            service.start()
        return FaultReport(
            ended_at=time.monotonic(),
            before=before,
            problems=problems,
            note=f"{how} after paced step 2 was stored, restarted at once",
        )

    return fault
