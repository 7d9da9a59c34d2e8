"""Notifications through the real gateway consumers (in-memory bus) to local fake HTTP
servers: a webhook receiver that checks the HMAC as the README tells receivers to, a fake
Telegram Bot API, a fake Discord webhook, one that fails twice then takes it, one that
always fails and one that never answers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.alert_store import InMemoryAlertStore
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.notify import MongoNotificationLog
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from tests.factories import candle
from tests.unit.test_gateway_notify import change
from tests.waiting import eventually

SECRET = "global-webhook-secret"
TOKEN = "123456:fake-bot-token"


def verified(secret: str, request_headers: Any, body: bytes) -> bool:
    """What a receiver does: recompute the HMAC of "<timestamp>.<raw body>", compare in
    constant time, refuse a timestamp more than five minutes away."""
    timestamp = request_headers.get("x-cryptocast-timestamp", "")
    signature = request_headers.get("x-cryptocast-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), signature)


@dataclass
class Receivers:
    """Every fake endpoint on one local server; what each received, and a signal per hit."""

    secrets: dict[str, str] = field(default_factory=lambda: {"hook": SECRET, "flaky": SECRET})
    got: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _hit(self, name: str, payload: Any = None) -> None:
        self.hits[name] += 1
        if payload is not None:
            self.got[name].append(payload)
        self.changed.set()

    async def wait_for(self, name: str, count: int, within: float = 10) -> list[Any]:
        async with asyncio.timeout(within):
            while len(self.got[name]) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.got[name]

    async def webhook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        if name == "flaky" and self.hits[name] < 2:
            self._hit(name)
            return Response(status_code=503)
        if name == "down":
            self._hit(name)
            return Response(status_code=500)
        if name == "slow":
            self._hit(name)
            await asyncio.sleep(30)
        if not verified(self.secrets[name], request.headers, body):
            self._hit(name)
            return Response(status_code=401)
        self._hit(name, await request.json())
        return Response(status_code=204)

    async def telegram(self, request: Request) -> Response:
        if request.path_params["token"] != TOKEN:
            return JSONResponse({"ok": False}, status_code=401)
        self._hit("telegram", await request.json())
        return JSONResponse({"ok": True, "result": {"message_id": 1}})

    async def discord(self, request: Request) -> Response:
        self._hit("discord", await request.json())
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hooks/{name}", self.webhook, methods=["POST"]),
                Route("/bot{token}/sendMessage", self.telegram, methods=["POST"]),
                Route("/api/webhooks/1/discord-token", self.discord, methods=["POST"]),
            ]
        )


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    fake = Receivers()
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def up() -> bool:  # uvicorn offers no event to await
        return server.started

    await eventually(up, within=10)
    fake.port = server.servers[0].sockets[0].getsockname()[1]
    yield fake
    server.should_exit = True
    server.force_exit = True
    await task


async def started(receivers: Receivers, **settings: Any) -> Gateway:
    defaults: dict[str, Any] = dict(
        port=0,
        webhook_urls=[receivers.url(f"/hooks/{name}") for name in ("hook", "flaky", "down")],
        webhook_secret=SecretStr(SECRET),
        telegram_bot_token=SecretStr(TOKEN),
        telegram_chat_id="-1001",
        telegram_api_url=receivers.url(""),
        discord_webhook_url=SecretStr(receivers.url("/api/webhooks/1/discord-token")),
        alert_webhook_allow_http=True,
        alert_webhook_allow_private=True,
        notify_attempts=3,
        notify_backoff_seconds=0.01,
        notify_timeout_seconds=1,
    )
    gateway = await bootstrap(
        CommonSettings(),
        GatewaySettings(**{**defaults, **settings}),
        bus=InMemoryBus(retry_delay_seconds=0.01),
        store=InMemoryEventStore(),
        alerts=InMemoryAlertStore(),
    )
    await gateway.start()
    return gateway


@pytest.fixture
async def gateway(receivers: Receivers) -> AsyncIterator[Gateway]:
    gateway = await started(receivers)
    yield gateway
    await gateway.state.bus.close()
    await gateway.stop()


def counted(gateway: Gateway, channel: str, outcome: str) -> float:
    labels = {"channel": channel, "outcome": outcome}
    registry = gateway.state.metrics.registry
    return registry.get_sample_value("cryptocast_notifications_total", labels) or 0.0


async def drained(gateway: Gateway) -> None:
    await asyncio.wait_for(gateway.state.bus.drain(), 15)  # type: ignore[attr-defined]


async def test_a_promotion_reaches_every_channel_and_a_dead_one_is_counted(
    gateway: Gateway, receivers: Receivers
) -> None:
    promoted = change("promoted")
    await gateway.state.bus.publish([promoted])
    (payload,) = await receivers.wait_for("hook", 1)
    assert payload["id"] == promoted.event_id and payload["type"] == "model_change"
    assert payload["data"]["model"] == {"name": "dist-4h", "version": "2"}
    (message,) = await receivers.wait_for("telegram", 1)
    assert message["chat_id"] == "-1001"
    assert message["text"].startswith("CryptoCast BTC 4h: dist-4h@2 promoted to champion")
    (posted,) = await receivers.wait_for("discord", 1)
    assert posted["content"] == message["text"]
    await receivers.wait_for("flaky", 1)
    await drained(gateway)
    assert receivers.hits["flaky"] == 3  # two 503s, then taken
    assert receivers.hits["down"] == 3  # every attempt, then given up
    assert counted(gateway, "webhook", "delivered") == 2
    assert counted(gateway, "webhook", "failed") == 1
    assert counted(gateway, "telegram", "delivered") == counted(gateway, "discord", "delivered")
    assert counted(gateway, "discord", "delivered") == 1
    assert gateway.state.bus.dead_letters == []  # type: ignore[attr-defined]  # acked


async def test_a_repeated_change_and_an_unchosen_kind_are_not_told(
    gateway: Gateway, receivers: Receivers
) -> None:
    closed, pinned = change("gate_closed"), change("pinned")
    await gateway.state.bus.publish([closed, pinned])
    await drained(gateway)
    await gateway.state.bus.publish([closed])  # the verifier tells a late replica again
    await drained(gateway)
    assert [p["id"] for p in receivers.got["hook"]] == [closed.event_id]
    assert len(receivers.got["telegram"]) == 1


async def alert_with_webhook(gateway: Gateway, webhook: str) -> httpx.Response:
    """POST /alert over the gateway's real HTTP server."""
    body = {"email": "you@example.com", "coin": "btc", "threshold": 100, "webhook": webhook}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as api:
        return await api.post("/alert", json=body)


async def test_a_price_alert_goes_to_its_own_signed_webhook_and_the_channels(
    gateway: Gateway, receivers: Receivers
) -> None:
    answer = await alert_with_webhook(gateway, receivers.url("/hooks/mine"))
    assert answer.status_code == 200
    receivers.secrets["mine"] = answer.json()["webhook_secret"]
    await gateway.state.bus.publish([candle(0, close=150.0)])
    (mine,) = await receivers.wait_for("mine", 1)  # verified with the alert's own secret
    assert mine["type"] == "price_alert" and mine["data"]["price"] == 150.0
    (broadcast,) = await receivers.wait_for("hook", 1)
    assert broadcast["id"] == mine["id"]
    await gateway.state.bus.publish([candle(1, close=160.0)])  # the alert is off now
    await drained(gateway)
    assert len(receivers.got["mine"]) == 1
    assert counted(gateway, "alert_webhook", "delivered") == 1


async def test_an_alert_webhook_on_the_gateways_own_network_is_refused(
    receivers: Receivers,
) -> None:
    gateway = await started(receivers, alert_webhook_allow_private=False)
    try:
        answer = await alert_with_webhook(gateway, receivers.url("/hooks/mine"))
        assert answer.status_code == 400
        assert "public host" in answer.json()["message"]
    finally:
        await gateway.state.bus.close()
        await gateway.stop()


async def test_a_webhook_that_never_answers_holds_up_neither_storing_nor_other_channels(
    receivers: Receivers,
) -> None:
    slow = receivers.url("/hooks/slow")
    gateway = await started(receivers, webhook_urls=[slow, receivers.url("/hooks/hook")])
    try:
        await gateway.state.bus.publish([change("demoted")])
        await receivers.wait_for("hook", 1, within=5)  # while the slow one hangs
        await gateway.state.bus.publish([candle(i) for i in range(20)])

        async def stored() -> bool:
            return len(gateway.state.store.collections["candles"]) == 20  # type: ignore[attr-defined]

        await eventually(stored, within=5)
        await drained(gateway)  # the slow one's attempts each time out after a second
        assert counted(gateway, "webhook", "failed") == 1
    finally:
        await gateway.state.bus.close()
        await gateway.stop()


async def test_the_mongo_log_tells_a_change_once_across_replicas(mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        db = client[f"notify_{uuid.uuid4().hex[:8]}"]
        first, second = MongoNotificationLog(db), MongoNotificationLog(db)
        assert not await first.seen("model_change:x")
        await first.record("model_change:x")
        await second.record("model_change:x")  # a replica that told it at the same moment
        assert await second.seen("model_change:x")
    finally:
        await client.close()
