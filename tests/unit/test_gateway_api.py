import base64
import json
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from cryptocast_gateway.api.routes import legacy, v1
from cryptocast_gateway.bootstrap import Gateway
from cryptocast_gateway.legacy import display_time, flask_json, money
from cryptocast_verifier.scoring import verify
from tests.factories import candle, prediction
from tests.gateway_app import KEY


def test_money_and_dates_as_the_original_showed_them() -> None:
    assert money(45234.56) == "$45,234.56"
    assert money(1.0016) == "$1.0016"
    assert money(1554.449, 45234.0) == "$1,554.45"
    assert money(0.0123, 1.2) == "$0.0123"
    assert (
        display_time(datetime(2025, 11, 24, 14, 30, tzinfo=UTC))
        == "Monday, November 24th, at 14:30"
    )
    assert display_time(datetime(2026, 8, 12, 8, tzinfo=UTC)).startswith("Wednesday, August 12th")
    assert display_time(datetime(2026, 8, 22, 8, 0, tzinfo=UTC)).endswith("22nd, at 08:00")


def test_flask_jsonify_bytes() -> None:
    assert flask_json({"b": "▲", "a": 1.5}) == b'{"a":1.5,"b":"\\u25b2"}\n'


async def test_fresh_install_answers_null_not_errors(client: httpx.AsyncClient) -> None:
    for path in ("/btc", "/verify/btc"):
        response = await client.get(path)
        assert (response.status_code, response.content) == (200, b"null\n")
    response = await client.get("/volatility/eth")
    assert response.json() == {"status": "Success", "average_error": None}
    assert (await client.get("/history/sol")).json() == []
    assert (await client.get("/")).status_code == 200


async def test_latest_prediction_in_the_original_shape(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await gateway.state.bus.publish(
        [
            prediction(0, base=45234.56, predicted=46789.01),
            prediction(1, base=100.0, predicted=99.0, symbol="XRP"),
        ]
    )
    await gateway.state.bus.drain()  # type: ignore[attr-defined]
    body = (await client.get("/btc")).json()
    assert body == {
        "_id": prediction(0).event_id,
        "currentPrice": "$45,234.56",
        "predictedPrice": "$46,789.01",
        "priceChange": "▲ $1,554.45 (3.44%)",
        "trend": "Bullish",
        "timestamp": "2026-08-01T04:00:00+00:00",
        "timestamp_display": "Saturday, August 1st, at 04:00",
        "raw_data": {
            "last_actual_close": 45234.56,
            "predicted_close": 46789.01,
            "change_dollars": pytest.approx(1554.45),
            "change_percent": pytest.approx(3.4364, abs=1e-4),
        },
    }
    xrp = (await client.get("/XRP")).json()
    assert xrp["priceChange"] == "▼ $1.00 (-1.00%)" and xrp["trend"] == "Bearish"
    assert xrp["currentPrice"] == "$100.00"


async def test_verifications_history_and_volatility(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    verdicts = [
        verify(prediction(i, base=100.0, predicted=100.0 + i), 101.0, 2.0) for i in range(35)
    ]
    await gateway.state.store.upsert(verdicts)
    latest = (await client.get("/verify/btc")).json()
    assert latest["predictedPrice"] == 134.0 and latest["actualPrice"] == 101.0
    assert latest["directionCorrect"] is False  # outside the 2% band
    assert latest["profitSim"] == pytest.approx(33.0)
    assert latest["predictionDate"] == verdicts[-1].based_on_time.isoformat()
    assert (await client.post("/verify/btc")).json() == {"status": "Success", "result": "Wrong"}
    history = (await client.get("/history/btc")).json()
    assert len(history) == 30 and history[0]["predictedPrice"] == 105.0
    assert set(history[0]) == {
        "date",
        "predictedPrice",
        "actualPrice",
        "errorPercent",
        "directionCorrect",
    }
    average = (await client.get("/volatility/btc")).json()["average_error"]
    assert average == pytest.approx(sum(v.error_pct for v in verdicts[-10:]) / 10)


async def test_unknown_coin_is_a_404_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    for path in ("/doge", "/verify/doge", "/history/doge", "/volatility/doge"):
        response = await client.get(path, headers={"Origin": "https://cryptocast.example"})
        assert response.status_code == 404
        assert "btc, eth, sol, xrp" in response.json()["message"]
        assert response.headers["access-control-allow-origin"] == "*"


async def test_cors_preflight_for_json_posts(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/record/btc",
        headers={
            "Origin": "https://cryptocast.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_record_needs_an_api_key(client: httpx.AsyncClient) -> None:
    body = {"last_actual_close": 100.0, "predicted_close": 102.0}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        refused = await client.post("/record/btc", json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {
            "status": "error",
            "message": "a valid X-API-Key header is required",
        }
    assert (await client.get("/btc")).content == b"null\n"  # nothing stored


async def test_record_validates_stores_and_publishes(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    client.headers.update(KEY)
    bad = await client.post("/record/btc", json={"last_actual_close": -5, "predicted_close": 1})
    assert bad.status_code == 400
    assert bad.json()["status"] == "error" and "last_actual_close" in bad.json()["message"]
    assert (await client.get("/btc")).content == b"null\n"  # nothing stored
    missing = await client.post("/record/btc")
    assert missing.status_code == 404

    ok = await client.post(
        "/record/btc",
        json={
            "last_actual_close": 100.0,
            "predicted_close": 102.0,
            "timestamp": "2026-08-01T05:30:00Z",
        },
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "Success" and body["message"] == "BTC data recorded successfully"
    assert body["data"]["_id"] == "prediction:manual@1:BTC:4h:2026-08-01T08:00:00Z"
    assert (await client.get("/btc")).json() == body["data"]
    again = await client.post("/record/btc")
    assert again.json()["data"] == body["data"]


async def test_candles_for_history_refill(gateway: Gateway, client: httpx.AsyncClient) -> None:
    await gateway.state.store.upsert([candle(i, close=100 + i) for i in range(6)])
    response = await client.get(
        "/api/v1/candles/btc", params={"end": candle(3).close_time.isoformat(), "limit": 2}
    )
    data = response.json()
    assert data["count"] == 2 and [c["close"] for c in data["data"]] == [102, 103]
    assert (await client.get("/api/v1/candles/btc", params={"limit": 0})).status_code == 400


async def test_legacy_bodies_are_flask_bytes(gateway: Gateway, client: httpx.AsyncClient) -> None:
    await gateway.state.bus.publish([prediction(0)])
    await gateway.state.bus.drain()  # type: ignore[attr-defined]
    raw = (await client.get("/btc")).content
    assert raw == flask_json(json.loads(raw))  # sorted keys, compact, ASCII, trailing newline


async def test_inputs_that_once_caused_500s_get_400s_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    huge_interval = await client.get(
        "/api/v1/candles/btc", params={"interval": "99999999999999999999w"}
    )
    nested_cursor = await client.get(
        "/api/v1/predictions/btc", params={"cursor": base64.urlsafe_b64encode(b"[" * 3000).decode()}
    )
    long_threshold = await client.post(
        "/alert",
        content=('{"email": "a@example.com", "coin": "btc", "threshold": 1' + "0" * 400 + "}"),
    )
    nested_body = await client.post("/alert", content="[" * 8000 + "]" * 8000)
    for response, field in [
        (huge_interval, "interval"),
        (nested_cursor, "cursor"),
        (long_threshold, "threshold"),
        (nested_body, "body"),
    ]:
        assert response.status_code == 400, (field, response.text)
        assert response.json()["status"] == "error" and field in response.json()["message"]


async def test_cursors_page_through_everything_and_anything_else_is_refused(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await gateway.state.store.upsert([prediction(i) for i in range(5)])
    seen, cursor = [], None
    while True:
        page = (
            await client.get(
                "/api/v1/predictions/btc",
                params={"limit": 2} | ({"cursor": cursor} if cursor else {}),
            )
        ).json()
        seen += [p["event_id"] for p in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [prediction(i).event_id for i in reversed(range(5))]
    refused = await client.get("/api/v1/predictions/btc", params={"cursor": "nonsense!"})
    assert refused.status_code == 400 and refused.json()["message"].startswith("query.cursor")


async def test_allow_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    for method, path, allow in [
        ("GET", "/alert", "DELETE, POST"),
        ("PUT", "/verify/btc", "GET, POST"),
        ("DELETE", "/healthz", "GET"),
    ]:
        response = await client.request(method, path)
        assert (response.status_code, response.headers["allow"]) == (405, allow), path


# The two hot reads, GET /<coin> and GET /api/v1/predictions/<symbol>/latest: validators and
# 304s, case rules, unknown symbols, and one answer path through FastAPI's own routes.
LATEST = ("/btc", "/api/v1/predictions/btc/latest")


class RouteSeen:
    """The app, noting the route each request's scope ends up with."""

    def __init__(self, gateway: Gateway) -> None:
        self.app, self.routes = gateway.app, []  # type: ignore[var-annotated]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        self.routes.append(scope.get("route"))


async def publish(gateway: Gateway, *predictions: object) -> None:
    await gateway.state.bus.publish(list(predictions))  # type: ignore[arg-type]
    await gateway.state.bus.drain()  # type: ignore[attr-defined]


async def test_both_answers_carry_an_etag_of_the_prediction_and_no_cache(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await publish(gateway, prediction(0))
    for path in LATEST:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["etag"].startswith(f'"{prediction(0).event_id}~')
        assert response.headers["cache-control"] == "no-cache"
    assert (await client.get(LATEST[0])).headers["etag"] == (await client.get(LATEST[1])).headers[
        "etag"
    ]


async def test_if_none_match_with_the_current_etag_is_a_304_without_body(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await publish(gateway, prediction(0))
    for path in LATEST:
        etag = (await client.get(path)).headers["etag"]
        for offered in (etag, f"W/{etag}", f'"stale", {etag}', "*"):
            response = await client.get(path, headers={"If-None-Match": offered})
            assert response.status_code == 304, offered
            assert response.content == b""
            assert "content-length" not in response.headers
            assert (response.headers["etag"], response.headers["cache-control"]) == (
                etag,
                "no-cache",
            )
        stale = await client.get(path, headers={"If-None-Match": '"stale"'})
        assert stale.status_code == 200 and stale.content


async def test_a_new_prediction_or_a_new_content_for_the_same_id_changes_the_etag(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await publish(gateway, prediction(0))
    first = (await client.get("/btc")).headers["etag"]
    await publish(gateway, prediction(1))
    second = await client.get("/btc", headers={"If-None-Match": first})
    assert second.status_code == 200 and second.headers["etag"] != first
    # Recorded again for the same target: the same prediction id, another content.
    await publish(gateway, prediction(1, predicted=202.0))
    third = await client.get("/btc", headers={"If-None-Match": second.headers["etag"]})
    assert third.status_code == 200 and third.json()["_id"] == second.json()["_id"]


async def test_symbols_in_any_case_get_the_same_bytes(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await publish(gateway, prediction(0))
    original = {(await client.get(f"/{coin}")).content for coin in ("btc", "BTC", "Btc")}
    versioned = {
        (await client.get(f"/api/v1/predictions/{symbol}/latest")).content
        for symbol in ("btc", "BTC", "bTc")
    }
    assert len(original) == 1 and len(versioned) == 1


async def test_unknown_symbols_are_404s_naming_the_known_ones_even_if_one_is_cached(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await publish(gateway, prediction(0, symbol="DOGE"))  # not a configured coin
    for path in ("/doge", "/DOGE"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {
            "status": "error",
            "message": f"unknown coin {path[1:]!r}; known coins: btc, eth, sol, xrp",
        }
    response = await client.get("/api/v1/predictions/doge/latest")
    assert response.status_code == 404
    assert response.json()["message"] == "unknown symbol 'doge'; known: BTC, ETH, SOL, XRP"


async def test_nothing_yet_keeps_the_original_answers(client: httpx.AsyncClient) -> None:
    original = await client.get("/btc", headers={"If-None-Match": "*"})
    assert (original.status_code, original.content) == (200, b"null\n")
    assert "etag" not in original.headers
    versioned = await client.get("/api/v1/predictions/btc/latest")
    assert versioned.status_code == 404
    assert versioned.json()["message"] == "no prediction for BTC yet"


async def test_both_urls_are_answered_by_their_fastapi_route(gateway: Gateway) -> None:
    await publish(gateway, prediction(0))
    seen = RouteSeen(gateway)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=seen), base_url="http://test"
    ) as client:
        for path in (
            "/btc",
            "/XRP",
            "/doge",
            "/api/v1/predictions/btc/latest",
            "/api/v1/predictions/doge/latest",
        ):
            await client.get(path)
    assert seen.routes == [legacy.latest_route] * 3 + [v1.latest_route] * 2
    operations = gateway.app.openapi()["paths"]
    for route in (legacy.latest_route, v1.latest_route):
        assert isinstance(route, APIRoute) and route.methods == {"GET"}
        documented = operations[route.path]["get"]
        assert {"200", "304", "404"} <= set(documented["responses"])
        assert "If-None-Match" in [parameter["name"] for parameter in documented["parameters"]]


async def test_the_route_answers_the_same_when_its_endpoint_is_called_directly(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await publish(gateway, prediction(0))
    for route, symbol, path in (
        (legacy.latest_route, "btc", "/btc"),
        (v1.latest_route, "BTC", "/api/v1/predictions/btc/latest"),
    ):
        response = await route.endpoint(symbol, gateway.state, None)
        assert response.body == (await client.get(path)).content


async def test_paths_of_other_routes_keep_precedence_over_the_coin_template(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/docs")).status_code == 200
    assert "paths" in (await client.get("/openapi.json")).json()
    assert (await client.get("/alert")).status_code == 405
    assert (await client.post("/btc")).status_code == 405
