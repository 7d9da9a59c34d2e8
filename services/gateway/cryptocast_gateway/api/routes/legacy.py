"""The original CryptoCast endpoints, same paths, shapes and status codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict

from cryptocast_common.events import (
    BasedOn,
    ModelRef,
    Prediction,
    Price,
    floor_to_interval,
    interval_delta,
)
from cryptocast_gateway import legacy
from cryptocast_gateway.api.deps import ApiError, ApiKey, State, Symbol

router = APIRouter(tags=["original API"])
MANUAL_MODEL = ModelRef(name="manual", version="1")


class FlaskJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return legacy.flask_json(content)


class RecordRequest(BaseModel):
    """A prediction recorded by hand; prices are plain numbers."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"last_actual_close": 64682.0, "predicted_close": 65120.5,
         "timestamp": "2026-08-15T08:00:00Z"}]})

    last_actual_close: Price
    predicted_close: Price
    timestamp: AwareDatetime | None = None


@router.get("/", response_class=PlainTextResponse)
async def home() -> str:
    return "CryptoCast API is running"


@router.post("/record/{coin}", response_class=FlaskJSONResponse, dependencies=[ApiKey],
             responses={401: {"description": "missing or wrong X-API-Key"}})
async def record(symbol: Symbol, state: State, body: RecordRequest | None = None) -> Any:
    interval = state.common.interval
    if body is None:
        prediction = await state.store.latest_prediction(symbol, interval)
        if prediction is None:
            raise ApiError(404, {"status": "Failed", "error": f"no prediction for {symbol} yet"})
    else:
        step = interval_delta(interval)
        closed = floor_to_interval(body.timestamp or datetime.now(UTC), interval)
        prediction = Prediction(
            symbol=symbol, interval=interval, model=MANUAL_MODEL,
            based_on=BasedOn(close_time=closed, close=body.last_actual_close),
            target_time=closed + step, predicted_close=body.predicted_close)
    await state.store.upsert([prediction])
    state.latest.update(prediction)
    await state.bus.publish([prediction])
    return {"status": "Success", "message": f"{symbol} data recorded successfully",
            "data": legacy.prediction_view(prediction)}


@router.post("/verify/{coin}", response_class=FlaskJSONResponse)
async def verify_latest(symbol: Symbol, state: State) -> Any:
    found = await state.store.verifications(symbol, state.common.interval, 1)
    if not found:
        raise ApiError(404, {"status": "Failed",
                             "error": f"no verified prediction for {symbol} yet"})
    return {"status": "Success", "result": "Correct" if found[0].within_tolerance else "Wrong"}


@router.get("/verify/{coin}", response_class=FlaskJSONResponse)
async def latest_verification(symbol: Symbol, state: State) -> Any:
    found = await state.store.verifications(symbol, state.common.interval, 1)
    return legacy.verification_view(found[0]) if found else None


@router.get("/history/{coin}", response_class=FlaskJSONResponse)
async def history(symbol: Symbol, state: State) -> Any:
    return legacy.history_view(await state.store.verifications(symbol, state.common.interval, 30))


@router.get("/volatility/{coin}", response_class=FlaskJSONResponse)
async def volatility(symbol: Symbol, state: State) -> Any:
    recent = await state.store.verifications(symbol, state.common.interval, 10)
    return {"status": "Success", "average_error": legacy.average_error(recent)}


@router.get("/{coin}")
async def latest_prediction(symbol: Symbol, state: State) -> Response:
    """Served from memory, pre-serialized; ``null`` before the first prediction."""
    latest = state.latest.get(symbol)
    return Response(latest.legacy_body if latest else b"null\n", media_type="application/json")
