"""A coin added while the pipeline runs, over RabbitMQ and the Mongo wire server: the
ingestor backfills it into the replay and follows it, inference shows its model's card and
predicts it once a window is full, and it is served no change until its own record opens
the gate."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_inference.registry import build_predictor
from cryptocast_inference.settings import InferenceSettings
from cryptocast_ingestor.bootstrap import bootstrap as ingestor
from cryptocast_ingestor.settings import IngestorSettings
from tests.e2e.services import running
from tests.waiting import eventually, finished

WINDOW = build_predictor(InferenceSettings(), "4h").window
KEY = "coins-e2e-key"
LIVE = 16  # paced steps: the coin is added while they are published


async def test_a_coin_added_at_run_time_is_backfilled_predicted_and_served_no_change(
    common: CommonSettings,
) -> None:
    common = common.model_copy(update={"symbols": ["BTC", "ADA"]})  # the Binance bundle
    keyed = GatewaySettings(port=0, api_keys=[SecretStr(KEY)])
    replay = IngestorSettings(backfill=WINDOW + 8, replay_live=LIVE, pace_seconds=0.5)
    async with running(common, keyed, baseline=False) as services:
        http, db = services.http, services.db
        source = await ingestor(common, replay)
        try:
            await source.start()
            steps = WINDOW + 8 + LIVE

            async def backfilled() -> bool:
                return await db.candles.count_documents({"symbol": "BTC"}) >= WINDOW + 8

            await eventually(backfilled, within=60)
            added = await http.post("/api/v1/symbols/doge", headers={"X-API-Key": KEY})
            assert added.status_code == 202, added.text
            assert source.task is not None
            await finished(source.task)

            async def every_doge_candle() -> bool:
                return await db.candles.count_documents({"symbol": "DOGE"}) == steps

            await eventually(every_doge_candle, within=60)  # its backfill, then the paced steps

            async def doge_verified() -> list[dict[str, Any]] | None:
                found = (await http.get("/api/v1/verifications/doge")).json()["data"]
                return found if len(found) == steps - WINDOW else None

            verdicts = await eventually(doge_verified, within=60)
            # A new coin starts on no change: its gate is closed until its own record is long
            # enough (the model's own forecast is kept beside it).
            assert all(v["gate"] == "closed" and v["model_error_pct"] is not None for v in verdicts)
            served = (await http.get("/doge")).json()
            assert served["predictedPrice"] == served["currentPrice"]
            assert ":dist-4h@" in served["_id"]
            card = (await http.get("/api/v1/model/doge")).json()
            assert card["symbol"] == "DOGE" and card["model"]["name"] == "dist-4h"
            assert "DOGE" in (await http.get("/api/v1/symbols")).json()["symbols"]
            # A gateway started now serves it too: the coins added are stored.
            assert await db.coins.count_documents({"symbol": "DOGE"}) == 1
            assert await db.ingestor_coins.count_documents({"symbol": "DOGE"}) == 1
        finally:
            await source.stop()
