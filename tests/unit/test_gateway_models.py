"""The model lifecycle through the gateway: what is served, the state and history per coin,
operators' requests, and the gate gauge."""

from datetime import timedelta

import httpx

from cryptocast_common.events import Event, ModelCard, ModelChange, ModelRef, Prediction
from cryptocast_gateway.bootstrap import Gateway
from tests.factories import candle, prediction
from tests.gateway_app import KEY

CHAMPION, CHALLENGER = "dist-4h@1", "dist-4h@2"


def as_model(made: Prediction, model: str, role: str, gate: str | None = None) -> Prediction:
    fields = made.model_dump() | {
        "model": ModelRef.parse(model),
        "role": role,
        "gate": gate,
        "event_id": "",
    }
    if gate == "closed":
        fields |= {
            "model_close": fields["predicted_close"],
            "predicted_close": fields["based_on"]["close"],
        }
    return Prediction.model_validate(fields)


def change(kind: str, model: str, i: int, by: str = "policy") -> ModelChange:
    return ModelChange(
        symbol="BTC",
        interval="4h",
        kind=kind,
        model=ModelRef.parse(model),
        by=by,
        reason="test",
        decided_at=candle(i).close_time,
    )


async def publish(gateway: Gateway, events: list[Event]) -> None:
    await gateway.state.bus.publish(events)
    await gateway.state.bus.drain()  # type: ignore[attr-defined]  # the in-memory bus


async def test_only_the_champions_forecast_is_served(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    made = prediction(3, base=100.0, predicted=103.0)
    await publish(
        gateway,
        [
            as_model(made, CHAMPION, "champion", "closed"),
            as_model(made, CHALLENGER, "challenger"),
            as_model(made, "naive@1", "baseline"),
        ],
    )
    served = (await client.get("/api/v1/predictions/btc/latest")).json()
    assert (served["role"], served["gate"], served["predicted_close"]) == (
        "champion",
        "closed",
        100.0,
    )
    assert served["model_close"] == 103.0
    assert (await client.get("/btc")).json()["predictedPrice"] == "$100.00"
    listed = (await client.get("/api/v1/predictions/btc")).json()["data"]
    assert sorted(p["role"] for p in listed) == ["baseline", "challenger", "champion"]


async def test_lifecycle_state_history_and_gate_gauge(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/v1/models/history")).json() == {"data": []}
    await publish(
        gateway,
        [
            change("gate_opened", CHAMPION, 1),
            change("promoted", CHALLENGER, 2),
            change("gate_closed", CHALLENGER, 2),
        ],
    )
    history = (await client.get("/api/v1/models/history?symbol=btc")).json()["data"]
    # Newest first; at one time, by event id.
    assert [c["kind"] for c in history] == ["promoted", "gate_closed", "gate_opened"]
    assert (await client.get("/api/v1/models/history?symbol=zzz")).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert 'cryptocast_model_gate_open{model="dist-4h@2",symbol="BTC"} 0.0' in metrics


async def test_the_model_card_of_the_champion_with_its_state(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/v1/model/btc")).status_code == 404
    from cryptocast_inference.registry import build_predictor
    from cryptocast_inference.settings import InferenceSettings

    shipped = build_predictor(InferenceSettings(), "4h")
    cards = shipped.cards(["BTC"], "4h")  # type: ignore[attr-defined]  # a distribution model
    await publish(gateway, [*cards, change("gate_opened", str(shipped.model), 5)])
    body = (await client.get("/api/v1/model/btc")).json()
    assert body["model"] == {"name": shipped.model.name, "version": shipped.model.version}
    assert body["lifecycle"] == {
        "champion": str(shipped.model),
        "gate": "open",
        "since": body["lifecycle"]["since"],
        "pinned": False,
        "blocked": [],
    }


async def test_an_operators_pin_is_published_for_the_lifecycle_to_apply(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    requests: list[Event] = []

    async def collect(events: list[Event]) -> list[Event]:
        requests.extend(events)
        return []

    await gateway.state.bus.consume("test.requests", ["model_change.#"], collect)
    await publish(gateway, [change("registered", CHALLENGER, 1, by="trainer")])
    body = {"model": CHALLENGER, "reason": "trying the new version"}
    assert (await client.post("/api/v1/models/btc/pin", json=body)).status_code == 401
    unknown = await client.post("/api/v1/models/btc/pin", json={"model": "other@9"}, headers=KEY)
    assert unknown.status_code == 409 and CHALLENGER in unknown.json()["message"]
    accepted = await client.post("/api/v1/models/btc/pin", json=body, headers=KEY)
    assert accepted.status_code == 202
    await gateway.state.bus.drain()  # type: ignore[attr-defined]  # the in-memory bus
    [pin] = [e for e in requests if isinstance(e, ModelChange) and e.by == "operator"]
    assert (pin.kind, str(pin.model), pin.reason) == (
        "pinned",
        CHALLENGER,
        "trying the new version",
    )
    assert accepted.json()["event_id"] == pin.event_id
    assert pin.decided_at.microsecond % 1000 == 0  # as MongoDB keeps it: read back, same id
    bad = await client.post("/api/v1/models/btc/fire", json=body, headers=KEY)
    assert bad.status_code == 400 and "action" in bad.text


async def test_the_card_shown_is_the_serving_models_never_a_newer_challengers(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    from cryptocast_inference.registry import build_predictor
    from cryptocast_inference.settings import InferenceSettings

    shipped = build_predictor(InferenceSettings(), "4h")
    [card] = shipped.cards(["BTC"], "4h")  # type: ignore[attr-defined]  # a distribution model
    newer = card.model_dump() | {
        "model": ModelRef.parse(CHALLENGER),
        "trained_at": card.trained_at + timedelta(days=1),
        "occurred_at": None,
        "event_id": "",
    }
    loaded = ModelCard.model_validate(newer)  # a version loaded at runtime shows its card
    await publish(gateway, [card, loaded])
    # Neither a lifecycle nor a served forecast names the champion yet.
    unknown = await client.get("/api/v1/model/btc")
    assert unknown.status_code == 404 and "no champion known" in unknown.json()["message"]
    champion = str(shipped.model)
    await publish(gateway, [as_model(prediction(3), champion, "champion", "closed")])
    body = (await client.get("/api/v1/model/btc")).json()
    assert (str(ModelRef(**body["model"])), body["lifecycle"]) == (champion, None)
    # A champion with no card (the baseline has none) is not shown another model's card.
    await publish(gateway, [change("gate_closed", "naive@1", 4)])
    cardless = await client.get("/api/v1/model/btc")
    assert cardless.status_code == 404 and "naive@1" in cardless.json()["message"]
    await publish(gateway, [change("promoted", CHALLENGER, 5)])
    body = (await client.get("/api/v1/model/btc")).json()
    assert body["model"] == {"name": "dist-4h", "version": "2"}
    assert body["lifecycle"]["champion"] == CHALLENGER


async def test_the_one_step_forecast_is_served_and_others_are_paged_by_horizon(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    now = as_model(prediction(3, base=100.0, predicted=103.0), CHAMPION, "champion", "open")
    ahead = as_model(
        prediction(3, base=100.0, predicted=106.0, horizon=3), CHAMPION, "champion", "open"
    )
    await publish(gateway, [now, ahead])
    assert (await client.get("/btc")).json()["predictedPrice"] == "$103.00"
    served = (await client.get("/api/v1/predictions/btc/latest")).json()
    assert (served["horizon"], served["event_id"]) == (1, now.event_id)
    [listed] = (await client.get("/api/v1/predictions/btc")).json()["data"]
    assert listed["event_id"] == now.event_id
    [three] = (await client.get("/api/v1/predictions/btc?horizon=3")).json()["data"]
    assert (three["event_id"], three["target_time"]) == (ahead.event_id, "2026-08-02T04:00:00Z")
    assert (await client.get("/api/v1/predictions/btc?horizon=2")).json()["data"] == []
    assert (await client.get("/api/v1/predictions/btc?interval=1d")).json()["data"] == []
    refused = await client.get("/api/v1/predictions/btc?horizon=0")
    assert refused.status_code in (400, 422)
    symbols = (await client.get("/api/v1/symbols")).json()
    assert (symbols["interval"], symbols["intervals"]) == ("4h", ["4h"])
