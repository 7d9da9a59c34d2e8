"""Coins added while the deployment runs (with an API key): the gateway announces the coin at
every interval it serves; the ingestor backfills and follows it, every gateway replica serves
it from then on, and it is served no change until its own live record opens the gate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response
from pydantic import BaseModel, Field

from cryptocast_common.coins import SYMBOL_IN_ANY_CASE, symbol_of
from cryptocast_common.events import CoinAdded
from cryptocast_gateway.api.deps import ApiKey, State

router = APIRouter(prefix="/api/v1", tags=["v1"])


class AddCoin(BaseModel):
    reason: str | None = Field(default=None, max_length=500, description="Kept with the event")


class CoinAnswer(BaseModel):
    symbol: str
    intervals: list[str]
    added: bool = Field(description="False: the coin was served already, nothing changed")
    message: str


@router.post(
    "/symbols/{symbol}",
    status_code=202,
    dependencies=[ApiKey],
    response_model=CoinAnswer,
    responses={
        200: {"model": CoinAnswer, "description": "the coin is served already"},
        401: {"description": "missing or wrong X-API-Key"},
    },
)
async def add_coin(
    symbol: Annotated[str, Path(pattern=SYMBOL_IN_ANY_CASE, examples=["ADA"])],
    state: State,
    response: Response,
    request: Annotated[AddCoin | None, Body()] = None,
) -> CoinAnswer:
    """Add a coin at every interval served. The ingestor backfills it (from the replayed
    bundle, or from the exchange) and follows it; it is served no change until its own live
    record opens the gate. A coin the ingestor has no data for is logged there, not added."""
    symbol = symbol_of(symbol)
    intervals = list(state.common.intervals)
    if symbol in state.common.symbols:
        response.status_code = 200
        return CoinAnswer(
            symbol=symbol, intervals=intervals, added=False, message=f"{symbol} is served"
        )
    reason = (request.reason if request else None) or "added through the API"
    now = datetime.now(UTC)
    await state.bus.publish(
        [
            CoinAdded(symbol=symbol, interval=interval, added_at=now, reason=reason)
            for interval in intervals
        ]
    )
    return CoinAnswer(
        symbol=symbol,
        intervals=intervals,
        added=True,
        message=f"{symbol} added: candles appear once the ingestor has backfilled it, "
        "predictions once a model's window is full",
    )
