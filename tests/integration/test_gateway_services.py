"""The gateway against real services: RabbitMQ, the Mongo wire server, an SMTP server on
loopback and WebSocket clients over TCP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import httpx
import pytest
import websockets
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from cryptocast.embedded_mongo import free_port
from cryptocast_common.amqp import AmqpBus
from cryptocast_common.metrics import forecast_metrics
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.alert_store import InMemoryAlertStore, MongoAlertStore
from cryptocast_gateway.alerts import Alert
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.lstm import load_artifact
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_verifier.scoring import verify
from tests.factories import candle, prediction
from tests.waiting import eventually

KEY = "integration-key-7c2e"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
async def gateway(common: CommonSettings, smtp: Any) -> AsyncIterator[tuple[Gateway, AmqpBus]]:
    controller, _ = smtp
    settings = GatewaySettings(
        port=0,
        api_keys=[SecretStr(KEY)],
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_security="none",
        stream_heartbeat_seconds=0.3,
    )
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    producer = await AmqpBus.connect(common.amqp_url or "", common)
    service = await bootstrap(common, settings, bus=bus)
    await service.start()
    yield service, producer
    await service.stop()
    await bus.close()
    await producer.close()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(common.mongo_url)
    await mongo.drop_database(common.mongo_db)
    await mongo.close()


async def test_versioned_api_and_stream(gateway: tuple[Gateway, AmqpBus]) -> None:
    service, producer = gateway
    base = f"http://127.0.0.1:{service.port}"
    ws_url = f"ws://127.0.0.1:{service.port}/api/v1/stream?symbols=BTC"
    async with websockets.connect(ws_url) as stream, httpx.AsyncClient(base_url=base) as http:
        assert json.loads(await asyncio.wait_for(stream.recv(), 5)) == {"type": "heartbeat"}
        predictions = [prediction(i, base=100 + i, predicted=101 + i * 1.01) for i in range(12)]
        verdicts = [verify(p, 100.5 + i, 2.0) for i, p in enumerate(predictions[:10])]
        settings = InferenceSettings()
        cards = load_artifact(artifact_dir(settings.artifacts_dir, LSTM_MODEL)).cards(["BTC"], "4h")
        await producer.publish([*predictions, prediction(0, symbol="ETH"), *verdicts, *cards])

        received = []
        while len(received) < len(predictions) + len(verdicts):
            message = json.loads(await asyncio.wait_for(stream.recv(), 10))
            if message["type"] != "heartbeat":
                received.append(message)
        assert {m["symbol"] for m in received} == {"BTC"}  # the filter holds back ETH
        assert [m["type"] for m in received].count("verification") == 10

        async def all_stored() -> bool:
            page = (await http.get("/api/v1/verifications/btc", params={"limit": 500})).json()
            return len(page["data"]) == 10

        await eventually(all_stored, within=20)
        assert (await http.get("/api/v1/symbols")).json() == {
            "interval": "4h",
            "intervals": ["4h"],
            "symbols": ["BTC", "ETH", "SOL", "XRP"],
        }
        latest = (await http.get("/api/v1/predictions/btc/latest")).json()
        assert latest["event_id"] == predictions[-1].event_id
        assert latest["target_time"].endswith("Z") and isinstance(latest["predicted_close"], float)

        first = (await http.get("/api/v1/predictions/btc", params={"limit": 5})).json()
        second = (
            await http.get(
                "/api/v1/predictions/btc", params={"limit": 5, "cursor": first["next_cursor"]}
            )
        ).json()
        third = (
            await http.get(
                "/api/v1/predictions/btc", params={"limit": 5, "cursor": second["next_cursor"]}
            )
        ).json()
        ids = [p["event_id"] for p in first["data"] + second["data"] + third["data"]]
        assert ids == [p.event_id for p in reversed(predictions)]
        assert third["next_cursor"] is None
        ranged = (
            await http.get(
                "/api/v1/predictions/btc",
                params={
                    "start": predictions[3].target_time.isoformat(),
                    "end": predictions[5].target_time.isoformat(),
                },
            )
        ).json()
        assert [p["event_id"] for p in ranged["data"]] == [
            p.event_id for p in reversed(predictions[3:6])
        ]
        bad = await http.get("/api/v1/predictions/btc", params={"cursor": "nonsense!"})
        assert bad.status_code == 400 and bad.json()["message"].startswith("query.cursor")

        stats = (await http.get("/api/v1/accuracy/btc", params={"window": "all"})).json()
        expected = forecast_metrics(
            [v.predicted_close for v in verdicts],
            [v.actual_close for v in verdicts],
            [v.based_on_close for v in verdicts],
        )
        served = stats["models"]["naive@1"]
        assert {key: served[key] for key in expected} == pytest.approx(expected)
        low, high = served["mase_ci"]
        assert low <= served["mase"] <= high
        assert served["beats_naive"] is (served["dm_vs_naive"] < -1.96)
        assert served["directions_judged"] + served["direction_ties"] == 10
        recent = (await http.get("/api/v1/accuracy/btc", params={"window": "24h"})).json()
        assert recent["models"] == {}  # the factories' predictions are from August 2026

        # The served forecasts are naive@1's, which has no card: the LSTM's is not shown
        # as if it served.
        no_card = await http.get("/api/v1/model/btc")
        assert no_card.status_code == 404 and "naive@1" in no_card.text
        assert cards[0].model.name != "naive"
        assert (await http.get("/api/v1/model/sol")).status_code == 404

        metrics = (await http.get("/metrics")).text
        assert 'cryptocast_events_persisted_total{type="verification"} 10.0' in metrics
        assert "cryptocast_stream_clients 1.0" in metrics
        assert 'cryptocast_accuracy{metric="within_2pct",model="naive@1",symbol="BTC"}' in metrics


async def test_the_stored_alerts_answer_as_the_fake_does(
    mongo_url: str,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    fired, other = candle(1, symbol="ETH").event_id, candle(0, symbol="ETH").event_id
    alerts = [
        Alert("a@example.com", "BTC", 105, "above", id="btc-active"),
        Alert("a@example.com", "BTC", 90, "below", active=False, id="btc-off"),
        Alert("b@example.com", "ETH", 50, "below", False, id="eth-unsent", triggered_by=fired),
        Alert("b@example.com", "ETH", 40, "below", False, id="eth-older", triggered_by=other),
        Alert(
            "b@example.com",
            "ETH",
            30,
            "below",
            False,
            id="eth-sent",
            triggered_by=fired,
            sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        Alert("c@example.com", "SOL", 10, "above", id="sol-active"),
    ]
    try:
        stored = MongoAlertStore(client[f"alerts_{uuid.uuid4().hex[:8]}"])
        await stored.ensure_indexes()
        fake = InMemoryAlertStore()
        for alert in alerts:
            await stored.add(alert)
            await fake.add(alert)
        batch = {"BTC": candle(1).event_id, "ETH": fired}
        due = {alert.id for alert in await stored.due(batch)}
        assert due == {"btc-active", "eth-unsent"}  # SOL had no candle in the batch
        assert due == {alert.id for alert in await fake.due(batch)}
        # A candle delivered again claims the alert it triggered whose email never went out.
        for store in (stored, fake):
            assert await store.claim("eth-unsent", fired)
            assert not await store.claim("eth-older", fired)
            assert not await store.claim("eth-sent", fired)
    finally:
        await client.close()


async def test_alerts_mail_once_and_validate_like_the_original(
    gateway: tuple[Gateway, AmqpBus], smtp: Any
) -> None:
    service, producer = gateway
    _, inbox = smtp
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
        for body, message in [
            ({"email": "a@example.com", "coin": "btc"}, "Missing required fields"),
            ({"email": "not-an-email", "coin": "btc", "threshold": 5}, "invalid email"),
            ({"email": "a@example.com", "coin": "doge", "threshold": 5}, "unknown coin 'doge'"),
            ({"email": "a@example.com", "coin": "btc", "threshold": 0}, "greater than 0"),
            (
                {"email": "a@example.com", "coin": "btc", "threshold": 5, "direction": "up"},
                "direction must be above or below",
            ),
        ]:
            refused = await http.post("/alert", json=body)
            assert refused.status_code == 400, body
            assert refused.json()["status"] == "error" and message in refused.json()["message"]
        created = await http.post(
            "/alert",
            json={
                "email": "Trader@Example.com",
                "coin": "bitcoin",
                "threshold": 105,
                "direction": "above",
            },
        )
        assert created.content == b'{"message":"Alert created","status":"Success"}\n'
        await http.post(
            "/alert",
            json={"email": "b@example.com", "coin": "eth", "threshold": 50, "direction": "below"},
        )
        await http.post(
            "/alert",
            json={"email": "b@example.com", "coin": "eth", "threshold": 10, "direction": "below"},
        )

        await producer.publish(
            [
                candle(0, close=104),
                candle(1, close=106),
                candle(2, close=107),
                candle(0, close=40, symbol="ETH"),
            ]
        )

        async def mailed() -> bool:
            return len(inbox.messages) == 2

        await eventually(mailed, within=20)
        subjects = sorted(m["Subject"] for m in inbox.messages)
        assert subjects == [
            "CryptoCast Alert: BTC is above $105.00",
            "CryptoCast Alert: ETH is below $50.00",
        ]
        await http.post(
            "/alert",
            json={"email": "c@example.com", "coin": "btc", "threshold": 110, "direction": "above"},
        )
        await producer.publish([candle(3, close=120), candle(4, close=121)])

        async def mailed_the_new_one() -> bool:
            return len(inbox.messages) >= 3

        await eventually(mailed_the_new_one, within=20)  # candles 3 and 4 have been checked
        # and the first two alerts stayed switched off after firing once
        assert [m["To"] for m in inbox.messages[2:]] == ["c@example.com"]

        body = {"email": "b@example.com", "coin": "eth"}
        assert (await http.request("DELETE", "/alert", json=body)).status_code == 401
        switched = await http.request("DELETE", "/alert", json=body, headers={"X-API-Key": KEY})
        assert switched.json() == {"deactivated": 1, "status": "Success"}
