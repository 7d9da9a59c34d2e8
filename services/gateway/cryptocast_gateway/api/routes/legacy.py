"""The original CryptoCast endpoints, same paths, shapes and status codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag

from cryptocast_common.events import (
    BasedOn,
    ModelRef,
    Prediction,
    floor_to_interval,
    interval_delta,
)
from cryptocast_common.prices import Price
from cryptocast_gateway import legacy
from cryptocast_gateway.api.deps import ApiError, ApiKey, State, Symbol, known_symbol
from cryptocast_gateway.api.errors import ErrorBody
from cryptocast_gateway.api.latest import NOT_MODIFIED, IfNoneMatch

router = APIRouter(tags=["original API"])
MANUAL_MODEL = ModelRef(name="manual", version="1")


class NothingYet(BaseModel):
    """The original's answer when there is nothing to act on yet."""

    status: str = Field(examples=["Failed"])
    error: str


UNKNOWN_COIN: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown coin"}
}
NOTHING_YET: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody | NothingYet, "description": "unknown coin, or nothing yet"}
}


class FlaskJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return legacy.flask_json(content)


# Bounded so that the change between the two stays a finite number.
RecordedPrice = Annotated[Price, Field(le=1e12)]


class RecordRequest(BaseModel):
    """A prediction recorded by hand; prices are plain numbers."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "last_actual_close": 64682.0,
                    "predicted_close": 65120.5,
                    "timestamp": "2026-08-15T08:00:00Z",
                }
            ]
        },
    )

    last_actual_close: RecordedPrice
    predicted_close: RecordedPrice
    timestamp: AwareDatetime | None = None


class RecordedRawData(BaseModel):
    """``raw_data`` of a prediction document: the numbers the formatted strings came from."""

    model_config = ConfigDict(extra="ignore")

    last_actual_close: RecordedPrice
    predicted_close: RecordedPrice
    change_dollars: float | None = None
    change_percent: float | None = None


class RecordedDocument(BaseModel):
    """A whole prediction document, as ``GET /<coin>`` returns it and as the upstream
    pipeline posts it. The prices recorded are ``raw_data``'s, the time is ``timestamp``
    (the close the prediction starts from); the formatted strings and ``_id`` are ignored,
    and so are keys of newer documents (``interval80``, ``probabilityUp``...)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "_id": "prediction:lstm-4h@20261125-f64027e9:BTC:4h:2026-08-15T16:00:00Z",
                    "currentPrice": "$62,960.00",
                    "predictedPrice": "$62,959.13",
                    "priceChange": "\u25bc $0.87 (-0.00%)",
                    "trend": "Bearish",
                    "timestamp": "2026-08-15T12:00:00+00:00",
                    "timestamp_display": "Saturday, August 15th, at 12:00",
                    "raw_data": {
                        "last_actual_close": 62960.0,
                        "predicted_close": 62959.12937164307,
                        "change_dollars": -0.8706283569335938,
                        "change_percent": -0.0013828277587890625,
                    },
                }
            ]
        },
    )

    raw_data: RecordedRawData
    timestamp: AwareDatetime | None = None


def _record_shape(body: Any) -> str | None:
    """Which of the two bodies ``body`` means to be: a document has ``raw_data``, the flat
    body its two prices; anything else is neither (400 naming both)."""
    if not isinstance(body, dict):
        return None
    if "raw_data" in body:
        return "document"
    if "last_actual_close" in body or "predicted_close" in body:
        return "prices"
    return None


RecordBody = Annotated[
    Annotated[RecordRequest, Tag("prices")] | Annotated[RecordedDocument, Tag("document")],
    Discriminator(
        _record_shape,
        custom_error_type="record_body",
        custom_error_message="expected {last_actual_close, predicted_close, timestamp?} or a "
        "prediction document as GET /<coin> returns it, with raw_data {last_actual_close, "
        "predicted_close}",
    ),
    Body(),
]


@router.get("/", response_class=PlainTextResponse)
async def home() -> str:
    return "CryptoCast API is running"


@router.post(
    "/record/{coin}",
    response_class=FlaskJSONResponse,
    dependencies=[ApiKey],
    responses={
        **NOTHING_YET,
        401: {"model": ErrorBody, "description": "missing or wrong X-API-Key"},
    },
)
async def record(symbol: Symbol, state: State, body: RecordBody | None = None) -> Any:
    """Record a prediction: the two prices (``RecordRequest``), or a whole prediction
    document (``RecordedDocument``, what the upstream pipeline posts); no body records the
    latest again."""
    interval = state.common.interval
    if body is None:
        prediction = await state.store.latest_prediction(symbol, interval)
        if prediction is None:
            raise ApiError(404, {"status": "Failed", "error": f"no prediction for {symbol} yet"})
    else:
        if isinstance(body, RecordedDocument):
            current, predicted = body.raw_data.last_actual_close, body.raw_data.predicted_close
        else:
            current, predicted = body.last_actual_close, body.predicted_close
        step = interval_delta(interval)
        closed = floor_to_interval(body.timestamp or datetime.now(UTC), interval)
        prediction = Prediction(
            symbol=symbol,
            interval=interval,
            model=MANUAL_MODEL,
            based_on=BasedOn(close_time=closed, close=current),
            target_time=closed + step,
            predicted_close=predicted,
        )
    await state.store.upsert([prediction])
    state.latest.update(prediction)
    await state.bus.publish([prediction])
    return {
        "status": "Success",
        "message": f"{symbol} data recorded successfully",
        "data": legacy.prediction_view(prediction),
    }


@router.post("/verify/{coin}", response_class=FlaskJSONResponse, responses=NOTHING_YET)
async def verify_latest(symbol: Symbol, state: State) -> Any:
    found = await state.store.verifications(symbol, state.common.interval, 1)
    if not found:
        raise ApiError(
            404, {"status": "Failed", "error": f"no verified prediction for {symbol} yet"}
        )
    return {"status": "Success", "result": "Correct" if found[0].within_tolerance else "Wrong"}


@router.get("/verify/{coin}", response_class=FlaskJSONResponse, responses=UNKNOWN_COIN)
async def latest_verification(symbol: Symbol, state: State) -> Any:
    found = await state.store.verifications(symbol, state.common.interval, 1)
    return legacy.verification_view(found[0]) if found else None


@router.get("/history/{coin}", response_class=FlaskJSONResponse, responses=UNKNOWN_COIN)
async def history(symbol: Symbol, state: State) -> Any:
    return legacy.history_view(await state.store.verifications(symbol, state.common.interval, 30))


@router.get("/volatility/{coin}", response_class=FlaskJSONResponse, responses=UNKNOWN_COIN)
async def volatility(symbol: Symbol, state: State) -> Any:
    recent = await state.store.verifications(symbol, state.common.interval, 10)
    return {"status": "Success", "average_error": legacy.average_error(recent)}


@router.get("/{coin}", responses={**UNKNOWN_COIN, **NOT_MODIFIED})
async def latest_prediction(coin: str, state: State, if_none_match: IfNoneMatch = None) -> Response:
    """The newest prediction, from memory; ``null`` before the first one. The coin in any
    case (``btc`` is ``BTC``). Called straight by ``DirectRoutes``, so it validates its coin
    itself."""
    latest = state.latest.get(await known_symbol(coin, state))
    if latest is None:
        return Response(b"null\n", media_type="application/json")
    return latest.rendered.response(latest.rendered.original, if_none_match)


latest_route = next(
    route
    for route in router.routes  # for DirectRoutes
    if isinstance(route, APIRoute) and route.endpoint is latest_prediction
)
