"""The AMQP subscriber helper, driven by the AsyncAPI document, against RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptocast_client import EventParser, channels, subscribe
from cryptocast_client.models import Prediction, Verification

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.asyncapi import asyncapi_document
from cryptocast_common.settings import CommonSettings
from cryptocast_verifier.scoring import verify
from tests.factories import candle, prediction

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_routing_keys_and_parsing_from_the_document() -> None:
    document = json.loads(DOCS.read_text())
    found = channels(document)
    assert set(found) >= {"candle", "prediction", "verification", "model", "model_change"}
    assert found["prediction"].exchange == "cryptocast.events"
    assert found["prediction"].routing_key(symbol="BTC") == "prediction.BTC.*"
    assert found["verification"].routing_key(interval="4h") == "verification.*.4h"
    parser = EventParser(document)
    sample = prediction(0)
    event = parser.parse("prediction.BTC.4h", sample.model_dump_json().encode())
    assert isinstance(event.event, Prediction) and event.event_id == sample.event_id
    broken = json.loads(sample.model_dump_json()) | {"predicted_close": "high"}
    with pytest.raises(Exception, match="'high' is not of type 'number'"):
        parser.parse("prediction.BTC.4h", json.dumps(broken).encode())


async def test_subscribe_binds_the_chosen_channels(common: CommonSettings) -> None:
    document = asyncapi_document(common)
    events = subscribe(
        common.amqp_url or "", document, ["prediction", "verification"], symbol="BTC"
    )
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(1.0)  # the queue is bound before the first message is awaited
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    try:
        ours = prediction(0, base=100.0, predicted=101.0)
        verdict = verify(ours, 100.5, 2.0)
        # An ETH prediction and a BTC candle match no binding; BTC's two events do.
        await bus.publish([prediction(0, symbol="ETH"), candle(0), ours, verdict])
        received = [await asyncio.wait_for(first, 15)]
        received.append(await asyncio.wait_for(anext(events), 15))
    finally:
        await events.aclose()
        await bus.close()
    assert [e.channel for e in received] == ["prediction", "verification"]
    assert isinstance(received[0].event, Prediction) and received[0].event_id == ours.event_id
    assert isinstance(received[1].event, Verification)
    assert received[1].routing_key == "verification.BTC.4h"
