"""Faults injected into the running pipeline: each case replays bundled history through the
four services (separate processes, RabbitMQ, nx-27017) and checks that exactly the expected
candles, predictions and verifications are stored, each once, and that the services came
back by themselves."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from cryptocast_common.amqp import QUEUE_HEADER, REASON_HEADER
from cryptocast_common.settings import CommonSettings
from tests.chaos.cases import (
    FaultReport,
    broker_outage,
    candles_of_step_stored,
    database_outage,
    outcome_problems,
    run_case,
    service_stop,
    wait_for,
)
from tests.chaos.harness import RESULTS, SERVICES, Pipeline, Replay, serving_model
from tests.chaos.malformed import Sent, publish_malformed, receivers

# 3 coins, the served model's window plus 10 steps at once, then 16 paced ones: with the
# 120-candle window, 438 candles, 81 predictions and 78 verifications.
WINDOW = serving_model()[1]
STANDARD = Replay(symbols=("BTC", "ETH", "SOL"), backfill=WINDOW + 10, live=16, pace_seconds=1.0)
# Killing the broker mid-burst needs a burst that lasts: with 10 steps past the window, the
# pipeline had verified them all before the harness saw the first prediction stored.
BURST = Replay(symbols=STANDARD.symbols, backfill=WINDOW + 100, live=16, pace_seconds=1.0)
REPEATS = 3
MALFORMED = 10_000
# The flood arrives during the backfill, then live candles keep coming as they would in
# service (30 steps, one a second). Taking the flood into three quorum queues and moving
# 25,716 copies to the dead-letter queue keeps this 2-core machine's broker busy for 20-25 s;
# with 12 live steps the replay's end waited for it (34.6 s against 14.0 s fault-free).
LIVE = Replay(symbols=STANDARD.symbols, backfill=WINDOW + 10, live=30, pace_seconds=1.0)

Make = Callable[[Replay], Pipeline]


async def fault_free_wall(pipelines: Make) -> float:
    """The fault-free run's wall time (ingestor start until everything expected is
    stored); measured once per session, by the first test that needs it."""
    if RESULTS.baseline_wall is None:
        result = await run_case(pipelines(STANDARD), "none (fault-free)")
        result.assert_ok()
        assert result.wall is not None
        RESULTS.baseline_wall = result.wall
    return RESULTS.baseline_wall


async def test_fault_free_replay_stores_exactly_the_expected_events(pipelines: Make) -> None:
    await fault_free_wall(pipelines)


@pytest.mark.parametrize("moment", ["idle", "busy"])
@pytest.mark.parametrize("attempt", range(1, REPEATS + 1))
async def test_broker_killed_for_10s(pipelines: Make, moment: str, attempt: int) -> None:
    replay = BURST if moment == "busy" else STANDARD
    result = await run_case(
        pipelines(replay), f"broker SIGKILL 10 s, {moment} #{attempt}", broker_outage(moment)
    )
    result.assert_ok()


async def test_database_killed_for_10s(pipelines: Make) -> None:
    result = await run_case(pipelines(STANDARD), "nx-27017 SIGKILL 10 s", database_outage)
    result.assert_ok()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("service", SERVICES)
async def test_service_stopped_and_restarted(pipelines: Make, service: str, how: str) -> None:
    result = await run_case(
        pipelines(STANDARD), f"{service} {how}, restarted", service_stop(service, how)
    )
    result.assert_ok()


async def test_default_backfill_with_a_fast_replay_verifies_everything(pipelines: Make) -> None:
    symbols = tuple(CommonSettings.model_fields["symbols"].default)
    replay = Replay(symbols=symbols, backfill=200, live=60, pace_seconds=0.05)
    result = await run_case(pipelines(replay), "defaults (backfill 200), fast replay")
    result.assert_ok()


async def test_malformed_messages_are_dead_lettered_and_change_nothing(pipelines: Make) -> None:
    baseline_run = await run_case(pipelines(LIVE), "none (fault-free), 30 live steps")
    baseline_run.assert_ok()
    assert baseline_run.wall is not None
    baseline = baseline_run.wall
    pipeline = pipelines(LIVE)
    sent: list[Sent] = []

    async def flood(pipeline: Pipeline) -> FaultReport:
        await wait_for(pipeline, lambda: candles_of_step_stored(pipeline, 0), "the first candles")
        started = time.monotonic()
        sent.extend(
            await publish_malformed(
                pipeline.rabbit.url, f"{pipeline.namespace}.events", LIVE.steps()[0][0], MALFORMED
            )
        )
        return FaultReport(
            note=f"{len(sent)} published during the backfill in {time.monotonic() - started:.1f}s"
        )

    result = await run_case(
        pipeline,
        f"{MALFORMED:,} malformed messages",
        flood,
        dead_expected=None,
        settle_within=300,
        stall=90,
        stop_at_end=False,
    )  # the bindings below include exclusive queues
    problems = list(result.problems)
    bindings = await pipeline.rabbit.list_bindings(f"{pipeline.namespace}.events")
    expected = {(s.message_id, queue) for s in sent for queue in receivers(s.routing_key, bindings)}
    kinds = {s.message_id: s.kind for s in sent}
    dead = await pipeline.drain_dead_letters()
    copies: Counter[tuple[str, str]] = Counter()
    without_reason: Counter[str] = Counter()
    foreign = []
    for message in dead:
        headers = message.headers or {}
        queue = headers.get(QUEUE_HEADER)
        queue = queue.decode() if isinstance(queue, bytes) else str(queue)
        if message.message_id not in kinds:
            foreign.append((message.message_id, queue, headers.get(REASON_HEADER)))
            continue
        copies[(message.message_id, queue)] += 1
        if not headers.get(REASON_HEADER):
            without_reason[kinds[message.message_id]] += 1
    missing = expected - set(copies)
    result.row.dead_lettered = f"{len(dead)} of {len(expected)}"
    if missing:
        by_kind = Counter(
            f"{kinds[m]} on {q.removeprefix(pipeline.namespace + '.')}" for m, q in missing
        )
        problems.append(
            f"{len(missing)} of {len(expected)} (message, queue) pairs never "
            f"dead-lettered: {dict(by_kind.most_common(12))}"
        )
    if without_reason:
        problems.append(f"dead letters without a {REASON_HEADER} header: {dict(without_reason)}")
    if foreign:
        problems.append(
            f"{len(foreign)} dead letters of the replay's own events, e.g. {foreign[:3]}"
        )
    repeated = sum(n - 1 for n in copies.values() if n > 1)
    wall = result.wall
    if wall is None or wall > 1.5 * baseline:
        problems.append(
            f"the replay took {wall if wall is None else round(wall, 1)}s to be "
            f"stored, more than 1.5 x the fault-free {baseline:.1f}s"
        )
    result.row.note += (
        f"; replay stored after {wall if wall is None else round(wall, 1)}s "
        f"(fault-free {baseline:.1f}s); {repeated} dead letters repeated"
    )
    result.row.outcome = "pass" if not problems else "FAIL"
    assert not problems, "\n".join(problems)


async def test_same_history_replayed_twice_leaves_identical_collections(pipelines: Make) -> None:
    replay = Replay(symbols=STANDARD.symbols, backfill=WINDOW + 10, live=4, pace_seconds=0.5)
    pipeline = pipelines(replay)
    first = await run_case(pipeline, "same history replayed twice", stop_at_end=False)
    before = await pipeline.documents()
    ingestor = pipeline.services["ingestor"]
    code = await ingestor.terminate()
    problems = list(first.problems)
    if code != 0:
        problems.append(f"the first ingestor exited with {code} on SIGTERM")
    pipeline.start_ingestor()
    if not await pipeline.wait_for_replay(replay.paced_seconds + 120):
        problems.append("the second replay never finished")
    snapshot = await pipeline.settle()
    after = await pipeline.documents()
    problems += outcome_problems(pipeline, snapshot, first.row, 0)
    for collection in before:
        if after[collection] != before[collection]:
            changed = [
                b.get("_id")
                for b, a in zip(before[collection], after[collection], strict=False)
                if a != b
            ]
            problems.append(
                f"{collection} changed by the second replay: {len(before[collection])}"
                f" -> {len(after[collection])} documents, first changed ids "
                f"{changed[:3]}"
            )
    first.row.outcome = "pass" if not problems else "FAIL"
    assert not problems, "\n".join(problems)
