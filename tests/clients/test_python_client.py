"""The Python client against a real gateway HTTP server (and its WebSocket stream)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import websockets
from cryptocast_client import CryptoCastClient, CryptoCastError, stream, stream_url
from cryptocast_client.models import Prediction, Verification

from tests.clients.conftest import KEY, LiveGateway
from tests.factories import prediction
from tests.waiting import eventually


async def test_reads(live: LiveGateway) -> None:
    async with CryptoCastClient(live.base_url) as api:
        symbols = await api.symbols()
        assert symbols.interval == "4h" and symbols.symbols == ["BTC", "ETH", "SOL", "XRP"]

        latest = await api.latest_prediction("btc")
        assert isinstance(latest, Prediction)
        assert latest.event_id == live.predictions[-1].event_id
        assert latest.predicted_close == pytest.approx(live.predictions[-1].predicted_close)
        assert latest.target_time == live.predictions[-1].target_time

        first = await api.predictions_page("BTC", limit=5)
        assert len(first.data) == 5 and first.next_cursor is not None
        every = [p.event_id async for p in api.predictions("btc", page_size=5)]
        assert every == [p.event_id for p in reversed(live.predictions)]
        ranged = [
            p.event_id
            async for p in api.predictions(
                "btc",
                start=live.predictions[3].target_time,
                end=live.predictions[5].target_time,
                page_size=2,
            )
        ]
        assert ranged == [p.event_id for p in reversed(live.predictions[3:6])]

        verdicts = [v async for v in api.verifications("BTC", page_size=3)]
        assert all(isinstance(v, Verification) for v in verdicts)
        assert [v.event_id for v in verdicts] == [v.event_id for v in reversed(live.verifications)]

        accuracy = await api.accuracy("btc", window="all")
        (scorecard,) = accuracy.models.values()
        assert scorecard.n == len(live.verifications) and accuracy.window == "all"

        card = await api.model("btc")
        assert str(card.model.name) == live.cards[0].model.name and card.features

        with pytest.raises(CryptoCastError) as unknown:
            await api.latest_prediction("doge")
        assert unknown.value.status_code == 404 and "unknown symbol" in unknown.value.message
        with pytest.raises(CryptoCastError) as bad:
            await api.predictions_page("btc", cursor="nonsense!")
        assert bad.value.status_code == 400 and bad.value.message.startswith("query.cursor")
        with pytest.raises(ValueError, match="timezone-aware"):
            await api.predictions_page(
                "btc", start=live.predictions[0].target_time.replace(tzinfo=None)
            )


async def test_operator_requests_need_the_key_and_show_in_history(live: LiveGateway) -> None:
    model = str(live.cards[0].model)
    async with CryptoCastClient(live.base_url) as anonymous:
        with pytest.raises(ValueError, match="api_key"):
            await anonymous.pin("btc", model)
    async with CryptoCastClient(live.base_url, api_key="wrong") as wrong:
        with pytest.raises(CryptoCastError) as refused:
            await wrong.pin("btc", model)
        assert refused.value.status_code == 401
    async with CryptoCastClient(live.base_url, api_key=KEY) as api:
        with pytest.raises(CryptoCastError) as unknown_model:
            await api.block("btc", "nobody@1")
        assert unknown_model.value.status_code == 409
        accepted = await api.pin("btc", model, reason="client test")
        assert accepted.status == "accepted" and accepted.event_id

        async def recorded() -> bool:
            history = await api.models_history("btc")
            return any(c.event_id == accepted.event_id for c in history.data)

        await eventually(recorded, within=10)
        change = (await api.models_history(limit=1)).data[0]
        assert (change.kind, change.by, str(change.model.name)) == (
            "pinned",
            "operator",
            live.cards[0].model.name,
        )


async def test_stream(live: LiveGateway) -> None:
    assert (
        stream_url("https://h:1/x", ["btc"])
        == "wss://h:1/x/api/v1/stream?models=served&symbols=BTC"
    )
    later = prediction(20, base=130.0, predicted=131.0)
    events = stream(live.base_url, ["BTC"])
    heartbeats = stream(live.base_url, ["eth"], heartbeats=True)
    assert await asyncio.wait_for(anext(heartbeats), 5) == {"type": "heartbeat"}
    await heartbeats.aclose()

    async def publish_soon() -> None:
        await asyncio.sleep(0.5)  # the stream connects first; it sends only what arrives later
        await live.bus.publish([prediction(21, symbol="ETH"), later])

    publisher = asyncio.create_task(publish_soon())
    received = await asyncio.wait_for(anext(events), 10)
    await publisher
    await events.aclose()
    assert isinstance(received, Prediction) and received.event_id == later.event_id
    assert received.target_time - received.based_on.close_time == timedelta(hours=4)

    # Unknown symbols are refused before the handshake completes: HTTP 403.
    with pytest.raises(websockets.InvalidStatus) as refused:
        await asyncio.wait_for(anext(stream(live.base_url, ["DOGE"])), 5)
    assert refused.value.response.status_code == 403
