"""The versioned API: typed models, plain numbers, ISO 8601 UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel

from cryptocast_common.events import Candle, Interval
from cryptocast_gateway.api.deps import State

router = APIRouter(prefix="/api/v1", tags=["v1"])
SymbolPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{2,15}$", examples=["BTC"])]


class CandlesPublic(BaseModel):
    data: list[Candle]
    count: int


@router.get("/candles/{symbol}", response_model=CandlesPublic)
async def candles(
    symbol: SymbolPath,
    state: State,
    interval: Annotated[Interval | None, Query(description="Default: the configured one")] = None,
    end: Annotated[AwareDatetime | None, Query(description="Newest close time to include")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> CandlesPublic:
    """The newest ``limit`` candles closing at or before ``end``, oldest first."""
    found = await state.store.candles(symbol.upper(), interval or state.common.interval,
                                      end or datetime.now(UTC), limit)
    return CandlesPublic(data=found, count=len(found))
