"""POST /record/<coin> takes the two prices, and also the whole prediction document (as
GET /<coin> returns it and the upstream CryptoCast pipeline posts it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.clients.conftest import KEY, LiveGateway

FLAT = {"last_actual_close": 100.0, "predicted_close": 102.0, "timestamp": "2026-08-01T05:30:00Z"}


@pytest.fixture
async def http(live: LiveGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, headers={"X-API-Key": KEY}) as client:
        yield client


async def test_both_shapes_record_the_same_prediction(http: httpx.AsyncClient) -> None:
    flat = await http.post("/record/sol", json=FLAT)
    assert flat.status_code == 200, flat.text
    document = flat.json()["data"]
    assert document["raw_data"]["predicted_close"] == 102.0
    # The document as GET /<coin> serves it, posted back for another coin: same values.
    again = await http.post("/record/xrp", json=(await http.get("/sol")).json())
    assert again.status_code == 200, again.text
    recorded = again.json()["data"]
    assert recorded["_id"] == document["_id"].replace(":SOL:", ":XRP:")
    assert {k: v for k, v in recorded.items() if k != "_id"} == {
        k: v for k, v in document.items() if k != "_id"
    }
    assert (await http.get("/xrp")).json() == recorded
    latest = (await http.get("/api/v1/predictions/xrp/latest")).json()
    assert (latest["based_on"]["close"], latest["predicted_close"]) == (100.0, 102.0)


async def test_values_come_from_raw_data_not_the_strings(http: httpx.AsyncClient) -> None:
    document = {
        "_id": "prediction:lstm-4h@20261125-f64027e9:BTC:4h:2026-08-15T16:00:00Z",
        "currentPrice": "$1.00",  # formatted strings are ignored
        "predictedPrice": "$2.00",
        "priceChange": "▲ $1.00 (100.00%)",
        "trend": "Bullish",
        "timestamp": "2026-08-15T12:00:00+00:00",
        "timestamp_display": "Saturday, August 15th, at 12:00",
        "raw_data": {
            "last_actual_close": 62960.0,
            "predicted_close": 62959.12937164307,
            "change_dollars": -0.8706283569335938,
            "change_percent": -0.0013828277587890625,
        },
        "interval80": {"lower": 62000.0, "upper": 63900.0},  # newer documents' keys: ignored
    }
    response = await http.post("/record/btc", json=document)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["currentPrice"] == "$62,960.00" and data["predictedPrice"] == "$62,959.13"
    assert data["trend"] == "Bearish" and data["timestamp"] == "2026-08-15T12:00:00+00:00"
    assert data["_id"] == "prediction:manual@1:BTC:4h:2026-08-15T16:00:00Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"foo": 1}, "expected {last_actual_close, predicted_close, timestamp?} or a prediction"),
        ([1, 2], "expected {last_actual_close, predicted_close"),
        ({"raw_data": {"last_actual_close": 1.0}}, "body.document.raw_data.predicted_close"),
        ({"raw_data": "62960"}, "body.document.raw_data: Input should be a valid dictionary"),
        (
            {"raw_data": {"last_actual_close": -1.0, "predicted_close": 1.0}},
            "body.document.raw_data.last_actual_close: Input should be greater than 0",
        ),
        (
            {"raw_data": {"last_actual_close": 1.0, "predicted_close": 1.0}, "timestamp": "now"},
            "body.document.timestamp",
        ),
        ({"predicted_close": 1.0}, "body.prices.last_actual_close: Field required"),
        (FLAT | {"trend": "Bullish"}, "body.prices.trend: Extra inputs are not permitted"),
    ],
)
async def test_anything_else_is_a_400_naming_what_is_wrong(
    http: httpx.AsyncClient, body: object, message: str
) -> None:
    response = await http.post("/record/eth", json=body)
    assert response.status_code == 400
    assert response.json()["status"] == "error" and message in response.json()["message"]


async def test_the_document_needs_the_key_too(live: LiveGateway) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as anonymous:
        refused = await anonymous.post(
            "/record/btc", json={"raw_data": {"last_actual_close": 1.0, "predicted_close": 2.0}}
        )
    assert refused.status_code == 401
