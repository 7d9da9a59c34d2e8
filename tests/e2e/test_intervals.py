"""Two intervals and several horizons through the whole pipeline, over RabbitMQ and the Mongo
wire server: daily candles built from the replayed 4-hour ones, predictions 1 .. 3 candles
ahead of each, every one verified at its own target time, and the original endpoints still
serving the 4-hour, one-step forecast."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from cryptocast_common.settings import CommonSettings
from cryptocast_inference.registry import build_predictor
from cryptocast_inference.settings import InferenceSettings
from cryptocast_ingestor.bootstrap import bootstrap as ingestor
from cryptocast_ingestor.settings import IngestorSettings, replay_folder
from cryptocast_ingestor.sources.replay import load_timelines
from tests.e2e.services import running
from tests.waiting import eventually, finished

WINDOW = build_predictor(InferenceSettings(), "4h").window
HORIZONS = 3
COINS = ["BTC", "ETH"]


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_every_interval_and_horizon_is_predicted_and_verified(
    common: CommonSettings,
) -> None:
    common = common.model_copy(update={"intervals": ["4h", "1d"], "symbols": COINS})
    replay = IngestorSettings(backfill=WINDOW + 10, replay_live=0, pace_seconds=0)
    # No daily model: the bundled month of 4-hour candles is too short for its window.
    async with running(common, horizons=HORIZONS, interval_models={}) as services:
        http, db = services.http, services.db
        source = await ingestor(common, replay)
        await source.start()
        assert source.task is not None
        await finished(source.task)
        await source.stop()
        folder = replay_folder(replay, COINS, "4h")
        published = load_timelines(folder, COINS, ["4h", "1d"], last=replay.backfill)
        days = sum(c.interval == "1d" and c.symbol == "BTC" for step in published for c in step)
        assert days >= 20  # the bundled month of 4-hour candles makes about 29 days

        counts: list[int] = []  # the last look's, for the failure message
        expected = [days - h for h in range(1, HORIZONS + 1)]

        async def daily_verdicts() -> list[dict[str, Any]] | None:
            """Every daily verdict at every horizon: no model of its own, so the baseline
            is the daily champion; its window is one candle, so every day is predicted."""
            found = [
                (
                    await http.get(
                        "/api/v1/verifications/btc",
                        params={"interval": "1d", "horizon": h, "limit": 500},
                    )
                ).json()["data"]
                for h in range(1, HORIZONS + 1)
            ]
            counts[:] = [len(f) for f in found]
            return found if counts == expected else None

        try:
            verdicts = await eventually(daily_verdicts, within=90)
        except TimeoutError:
            pytest.fail(f"daily verdicts per horizon: {counts} after 90 s, not {expected}")
        for horizon, made in enumerate(verdicts, start=1):
            for verdict in made:
                assert (verdict["horizon"], verdict["role"]) == (horizon, "champion")
                ahead = moment(verdict["target_time"]) - moment(verdict["based_on_time"])
                assert ahead == timedelta(days=horizon)
                assert verdict["model"] == {"name": "naive", "version": "1"}
        three = (
            await http.get(
                "/api/v1/predictions/btc", params={"interval": "1d", "horizon": 3, "limit": 500}
            )
        ).json()["data"]
        assert len(three) == days and all(":1d:h3:" in p["event_id"] for p in three)

        # The 4-hour series: the shipped model as far ahead as it forecasts, the baseline to 3.
        four_hour = await db.predictions.distinct("horizon", {"symbol": "ETH", "interval": "4h"})
        assert sorted(four_hour) == [1, 2, 3]
        latest = (await http.get("/btc")).json()
        assert (
            ":dist-4h@" in latest["_id"] and ":4h:" in latest["_id"] and ":h" not in latest["_id"]
        )
        served = (await http.get("/api/v1/predictions/btc/latest")).json()
        assert (served["interval"], served["horizon"]) == ("4h", 1)
        symbols = (await http.get("/api/v1/symbols")).json()
        assert symbols["intervals"] == ["4h", "1d"]
