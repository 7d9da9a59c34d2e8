"""The versioned API: typed models, plain numbers, ISO 8601 UTC times, cursor pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, WebSocket
from fastapi.routing import APIRoute
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from cryptocast_common.coins import (
    SYMBOL_IN_ANY_CASE,
    symbol_of,
    unknown_symbols,
)
from cryptocast_common.events import (
    MAX_HORIZON,
    Candle,
    Prediction,
    Verification,
)
from cryptocast_common.scorecard import Scorecard
from cryptocast_gateway.accuracy import Window, accuracy
from cryptocast_gateway.api.deps import ApiError, State, symbol_or_404
from cryptocast_gateway.api.latest import NOT_MODIFIED, IfNoneMatch
from cryptocast_gateway.store import Position

router = APIRouter(prefix="/api/v1", tags=["v1"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown symbol, or nothing stored yet"}
}


async def v1_symbol(
    symbol: Annotated[str, Path(pattern=SYMBOL_IN_ANY_CASE, examples=["BTC"])], state: State
) -> str:
    return symbol_or_404(symbol, state, "unknown symbol {name}; known: {symbols}")


Symbol = Annotated[str, Depends(v1_symbol)]
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    """Only what "format: date-time" allows; pydantic alone would also take unix seconds."""
    if isinstance(value, str) and not RFC3339.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time such as 2026-08-01T04:00:00Z")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
Start = Annotated[Moment | None, Query(description="Earliest target time, RFC 3339")]
End = Annotated[Moment | None, Query(description="Latest target time, RFC 3339")]
# A cursor is "<microseconds since 1970>~<event id>": every string of that shape is a valid
# position, so the pattern alone tells a valid cursor from an invalid one.
CURSOR_PATTERN = r"^[0-9]{1,16}~[A-Za-z0-9:@._+-]{1,300}$"
Cursor = Annotated[
    str | None, Query(description="next_cursor of the previous page", pattern=CURSOR_PATTERN)
]
# Any interval of at most four digits: one the gateway has no candles of answers an empty page.
CandleInterval = Annotated[
    str | None,
    Query(
        pattern=r"^[1-9][0-9]{0,3}[mhdw]$",
        examples=["4h"],
        description="<n><m|h|d|w>, n up to 9999; default: the configured one",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Horizon = Annotated[
    int,
    Query(ge=1, le=MAX_HORIZON, description="Candles ahead the predictions look; 1: the next"),
]


class Symbols(BaseModel):
    interval: str = Field(examples=["4h"], description="The one the original endpoints serve")
    intervals: list[str] = Field(examples=[["4h", "1d"]], description="Every one predicted")
    symbols: list[str] = Field(examples=[["BTC", "ETH", "SOL", "XRP"]])


class PredictionPage(BaseModel):
    data: list[Prediction]
    next_cursor: str | None = Field(description="Pass as cursor for older items; null at the end")


class VerificationPage(BaseModel):
    data: list[Verification]
    next_cursor: str | None


class CandlesPublic(BaseModel):
    data: list[Candle]
    count: int


class Accuracy(BaseModel):
    symbol: str
    interval: str
    window: Window
    models: dict[str, Scorecard] = Field(
        description="Per model@version: the point forecast "
        "against no change (mase is the MAE relative to the "
        "no-change forecast on the same candles, with its "
        "bootstrap interval and the Diebold-Mariano "
        "statistic), direction, interval coverage and width, "
        "and the Brier score of p_up beside the base rate's"
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(position: Position) -> str:
    at, event_id = position
    return f"{(at - EPOCH) // timedelta(microseconds=1)}~{event_id}"


def decode_cursor(cursor: str | None) -> Position | None:
    """The position of a cursor that matched CURSOR_PATTERN."""
    if cursor is None:
        return None
    micros, event_id = cursor.split("~", 1)
    return EPOCH + timedelta(microseconds=int(micros)), event_id


@dataclass
class PageRequest:
    """The query of a page of predictions or verdicts, newest target first."""

    start: Start = None
    end: End = None
    cursor: Cursor = None
    limit: Limit = 100
    interval: CandleInterval = None
    horizon: Horizon = 1


Page = Annotated[PageRequest, Depends()]


async def _page(
    state: State, collection: str, symbol: str, request: PageRequest
) -> tuple[list, str | None]:
    before, limit = decode_cursor(request.cursor), request.limit
    found = await state.store.page(
        collection,
        symbol,
        request.interval or state.common.interval,
        request.start,
        request.end,
        before,
        limit + 1,
        horizon=request.horizon,
    )
    more = len(found) > limit
    found = found[:limit]
    last = found[-1] if found else None
    next_cursor = None
    if more and isinstance(last, Prediction | Verification):
        next_cursor = encode_cursor((last.target_time, last.event_id))
    return found, next_cursor


@router.get("/symbols", response_model=Symbols)
async def symbols(state: State) -> Symbols:
    """The coins served, and their candle intervals."""
    return Symbols(
        interval=state.common.interval,
        intervals=state.common.intervals,
        symbols=state.common.symbols,
    )


@router.get(
    "/predictions/{symbol}/latest",
    response_model=Prediction,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def latest_prediction(
    symbol: Annotated[str, Path(examples=["BTC"])], state: State, if_none_match: IfNoneMatch = None
) -> Response:
    """The newest prediction, from memory; the symbol in any case (``btc`` is ``BTC``).
    Called straight by ``DirectRoutes``, so it validates its symbol itself."""
    symbol = await v1_symbol(symbol, state)
    latest = state.latest.get(symbol)
    if latest is None:
        raise ApiError(404, {"status": "error", "message": f"no prediction for {symbol} yet"})
    return latest.rendered.response(latest.rendered.v1, if_none_match)


latest_route = next(
    route
    for route in router.routes  # for DirectRoutes
    if isinstance(route, APIRoute) and route.endpoint is latest_prediction
)


@router.get("/predictions/{symbol}", response_model=PredictionPage, responses=NOT_FOUND)
async def predictions(symbol: Symbol, state: State, page: Page) -> PredictionPage:
    """Predictions, newest target first, optionally within [start, end]; of the original
    endpoints' interval, one candle ahead, unless ``interval`` and ``horizon`` say otherwise."""
    found, next_cursor = await _page(state, "predictions", symbol, page)
    return PredictionPage(data=found, next_cursor=next_cursor)


@router.get("/verifications/{symbol}", response_model=VerificationPage, responses=NOT_FOUND)
async def verifications(symbol: Symbol, state: State, page: Page) -> VerificationPage:
    """Verdicts on predictions, newest target first, optionally within [start, end]; of
    ``interval`` and ``horizon`` as for predictions."""
    found, next_cursor = await _page(state, "verifications", symbol, page)
    return VerificationPage(data=found, next_cursor=next_cursor)


@router.get("/accuracy/{symbol}", response_model=Accuracy, responses=NOT_FOUND)
async def accuracy_stats(
    symbol: Symbol,
    state: State,
    window: Annotated[Window, Query()] = "7d",
) -> Accuracy:
    """How the predictions whose target closed within ``window`` did, per model version."""
    models = await accuracy(state.store, symbol, state.common.interval, window, datetime.now(UTC))
    return Accuracy(symbol=symbol, interval=state.common.interval, window=window, models=models)


@router.get("/candles/{symbol}", response_model=CandlesPublic)
async def candles(
    symbol: Annotated[str, Path(pattern=SYMBOL_IN_ANY_CASE, examples=["BTC"])],
    state: State,
    interval: CandleInterval = None,
    end: Annotated[Moment | None, Query(description="Newest close time to include")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> CandlesPublic:
    """The newest ``limit`` candles closing at or before ``end``, oldest first."""
    found = await state.store.candles(
        symbol_of(symbol), interval or state.common.interval, end or datetime.now(UTC), limit
    )
    return CandlesPublic(data=found, count=len(found))


@router.websocket("/stream")
async def stream(
    websocket: WebSocket,
    symbols: Annotated[
        str | None, Query(description="Comma-separated symbols; all when absent")
    ] = None,
    models: Annotated[
        Literal["served", "all"],
        Query(
            description="served: the champion's predictions and verdicts only; all: every "
            "model's, challengers and the baseline too"
        ),
    ] = "served",
) -> None:
    """Predictions and verifications as JSON events as they arrive, a
    ``{"type":"heartbeat"}`` when idle; a client that falls behind is closed with 1013."""
    state = websocket.app.state.gateway
    wanted = None
    if symbols:
        names = [name.strip() for name in symbols.split(",") if name.strip()]
        unknown = unknown_symbols(names, state.common.symbols)
        if unknown:
            await websocket.close(1008, f"unknown symbols: {', '.join(unknown)}")
            return
        wanted = frozenset(map(symbol_of, names))
    await state.hub.serve(websocket, wanted, every_model=models == "all")
