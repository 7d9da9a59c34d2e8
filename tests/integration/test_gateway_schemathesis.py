"""The gateway against its own OpenAPI document: schemathesis generates valid and invalid
requests for every operation (examples, coverage of boundaries and unexpected methods, then
random cases) and runs all its default checks on every answer: no 5xx, documented status
codes, content types and schemas, invalid data refused, valid data accepted, ``Allow``.

In process over ASGI, with in-memory stores seeded with a few events of every kind so the
answers carry data; rate limit off (a 429 is documented but would hide everything else)."""

from __future__ import annotations

import asyncio

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.lstm import load_artifact
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_verifier.scoring import verify
from tests.factories import candle, prediction

KEY = "schemathesis-key-91d3"


async def seeded_app() -> FastAPI:
    store = InMemoryEventStore()
    predictions = [prediction(i, base=100 + i, predicted=101 + i) for i in range(5)]
    inference = InferenceSettings()
    cards = load_artifact(artifact_dir(inference.artifacts_dir, LSTM_MODEL)).cards(["BTC"], "4h")
    await store.upsert(
        [
            *predictions,
            *(verify(p, 100.5, 2.0) for p in predictions),
            *(candle(i) for i in range(5)),
            *cards,
        ]
    )
    gateway = await bootstrap(
        CommonSettings(),
        GatewaySettings(api_keys=[SecretStr(KEY)], rate_limit_per_minute=0, access_log=False),
        bus=InMemoryBus(),
        store=store,
        serve_http=False,
    )
    gateway.state.latest.update(predictions[-1])
    return gateway.app


schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    asyncio.run(seeded_app()),
    config=schemathesis.Config.from_dict(
        {"generation": {"mode": "all"}, "headers": {"X-API-Key": KEY}}
    ),
)


@schema.parametrize()
@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()
