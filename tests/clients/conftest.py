"""A real gateway for the clients: its HTTP server on a free port, in-memory bus and store,
seeded with predictions, verifications and model cards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.events import ModelCard, ModelRef, Prediction, Verification
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.lstm import load_artifact
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_verifier.scoring import verify
from tests.factories import prediction

KEY = "clients-key-3f9a"


@dataclass
class LiveGateway:
    gateway: Gateway
    bus: InMemoryBus
    base_url: str
    predictions: list[Prediction]
    verifications: list[Verification]
    cards: list[ModelCard]


@pytest.fixture
async def live() -> AsyncIterator[LiveGateway]:
    bus = InMemoryBus()
    gateway = await bootstrap(
        CommonSettings(),
        GatewaySettings(
            port=0,
            host="127.0.0.1",
            api_keys=[SecretStr(KEY)],
            rate_limit_per_minute=0,
            access_log=False,
            stream_heartbeat_seconds=0.3,
        ),
        bus=bus,
        store=InMemoryEventStore(),
    )
    await gateway.start()
    cards = load_artifact(artifact_dir(InferenceSettings().artifacts_dir, LSTM_MODEL)).cards(
        ["BTC"], "4h"
    )
    # The carded model serves BTC, so GET /api/v1/model/btc has the serving model's card.
    predictions = [
        by_model(prediction(i, base=100 + i, predicted=101 + i * 1.01), cards[0].model)
        for i in range(12)
    ]
    verifications = [verify(p, 100.5 + i, 2.0) for i, p in enumerate(predictions[:10])]
    await bus.publish([*predictions, prediction(0, symbol="ETH"), *verifications, *cards])
    await bus.drain()
    try:
        yield LiveGateway(
            gateway,
            bus,
            f"http://127.0.0.1:{gateway.port}",
            predictions,
            verifications,
            cards,
        )
    finally:
        await gateway.stop()
        await bus.close()


def by_model(forecast: Prediction, model: ModelRef) -> Prediction:
    """``forecast`` as ``model``'s, under the id that model's forecast has."""
    return Prediction.model_validate(forecast.model_dump(exclude={"event_id"}) | {"model": model})
