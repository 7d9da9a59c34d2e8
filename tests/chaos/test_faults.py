"""Faults injected into the running pipeline: each case replays bundled history through the
four services (separate processes, RabbitMQ, nx-27017) and checks that exactly the expected
candles, predictions and verifications are stored, each once, and that the services came
back by themselves."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cryptocast_common.settings import CommonSettings
from tests.chaos.cases import (
    broker_outage,
    database_outage,
    run_case,
    service_stop,
)
from tests.chaos.harness import RESULTS, SERVICES, Pipeline, Replay

# 3 coins, 40 steps at once, then 12 paced ones: 156 candles, 81 predictions (26 candles
# per window), 78 verifications. The backfill stays under the verifier's 50-candle
# retention, so only the default-settings case below tests bursts longer than that.
STANDARD = Replay(symbols=("BTC", "ETH", "SOL"), backfill=40, live=12, pace_seconds=1.0)
REPEATS = 3

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
    result = await run_case(pipelines(STANDARD), f"broker SIGKILL 10 s, {moment} #{attempt}",
                            broker_outage(moment))
    result.assert_ok()


async def test_database_killed_for_10s(pipelines: Make) -> None:
    result = await run_case(pipelines(STANDARD), "nx-27017 SIGKILL 10 s", database_outage)
    result.assert_ok()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("service", SERVICES)
async def test_service_stopped_and_restarted(pipelines: Make, service: str, how: str) -> None:
    result = await run_case(pipelines(STANDARD), f"{service} {how}, restarted",
                            service_stop(service, how))
    result.assert_ok()


async def test_default_backfill_with_a_fast_replay_verifies_everything(pipelines: Make) -> None:
    symbols = tuple(CommonSettings.model_fields["symbols"].default)
    replay = Replay(symbols=symbols, backfill=200, live=60, pace_seconds=0.05)
    result = await run_case(pipelines(replay), "defaults (backfill 200), fast replay")
    result.assert_ok()
