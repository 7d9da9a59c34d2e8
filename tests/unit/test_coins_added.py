"""Coins added at run time: announced by the gateway, kept and followed by the ingestor."""

import httpx

from cryptocast_common.events import Candle, CoinAdded, Event
from cryptocast_gateway.bootstrap import Gateway
from cryptocast_ingestor.coins import CoinDeps, InMemoryCoinStore, handle_coins
from tests.factories import T0, candle
from tests.gateway_app import KEY


async def test_an_added_coin_is_announced_at_every_interval_and_then_served(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    announced: list[Event] = []

    async def collect(events: list[Event]) -> list[Event]:
        announced.extend(events)
        return []

    await gateway.state.bus.consume("test.coins", ["coin_added.#"], collect)
    assert (await client.post("/api/v1/symbols/ada")).status_code == 401
    assert (await client.get("/api/v1/predictions/ada")).status_code == 404
    added = await client.post("/api/v1/symbols/ada", json={"reason": "asked for"}, headers=KEY)
    assert added.status_code == 202 and added.json()["added"] is True
    await gateway.state.bus.drain()  # type: ignore[attr-defined]  # the in-memory bus
    [coin] = announced
    assert (coin.symbol, coin.interval, coin.reason) == ("ADA", "4h", "asked for")
    assert "ADA" in (await client.get("/api/v1/symbols")).json()["symbols"]
    assert (await client.get("/api/v1/predictions/ada")).json()["data"] == []
    assert (await client.get("/ada")).json() is None  # served, nothing predicted yet
    again = await client.post("/api/v1/symbols/ADA", headers=KEY)
    assert again.status_code == 200 and again.json()["added"] is False
    assert (await client.post("/api/v1/symbols/no-such", headers=KEY)).status_code == 400
    # Stored, so a gateway started later serves it too.
    assert await gateway.state.store.coins_added() == ["ADA"]


async def test_the_ingestor_keeps_an_added_coin_before_it_follows_it() -> None:
    store = InMemoryCoinStore()
    followed: list[tuple[str, str]] = []

    async def follow(symbol: str, interval: str) -> list[Candle]:
        followed.append((symbol, interval))
        if symbol == "NOPE":
            raise FileNotFoundError("no replay data for NOPE 4h")
        return [candle(0, symbol=symbol)]

    deps = CoinDeps(store, follow)
    coins = [
        CoinAdded(symbol=s, interval="4h", added_at=T0, reason="test") for s in ("ADA", "NOPE")
    ]
    backfill = await handle_coins(coins, deps)
    # The history due now is published; a coin without data is logged, not retried.
    assert backfill == [candle(0, symbol="ADA")]
    assert followed == [("ADA", "4h"), ("NOPE", "4h")]
    assert [c.symbol for c in await store.added()] == ["ADA", "NOPE"]
    assert await handle_coins(coins[:1], deps) == backfill  # a redelivery: the same effect
    assert len(await store.added()) == 2
