"""The model lifecycle through the API: which model serves each coin and whether its gate is
open, every change with its evidence, and operators' pins and blocks (with an API key).

The state is the store's projection of the stored ``model_change`` events (kept as each is
stored, so a request reads one document); an operator's request is published on the bus,
and the verifier's lifecycle policy applies it and announces the effective change, which
then shows here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cryptocast_common.events import Gate, ModelCard, ModelChange, ModelRef
from cryptocast_common.lifecycle import NAIVE, Lineup
from cryptocast_gateway.api.deps import ApiError, ApiKey, State
from cryptocast_gateway.api.routes.v1 import NOT_FOUND, Symbol
from cryptocast_gateway.state import GatewayState

router = APIRouter(prefix="/api/v1", tags=["models"])
HISTORY_READ = 1000  # changes read for the models an operator may name
CARDS_READ = 100  # model cards read at a time, newest first, looking for the serving model's
REQUESTS = {"pin": "pinned", "unpin": "unpinned", "block": "blocked", "unblock": "unblocked"}


class LifecycleState(BaseModel):
    champion: str = Field(description="name@version of the model serving the coin")
    gate: Gate = Field(
        description="open: the champion serves its own point forecast; closed: no change, "
        "until its live record is long enough and not significantly worse than no change"
    )
    since: datetime | None = Field(description="When the gate took its current state")
    pinned: bool = Field(description="An operator pinned the champion: no promotions")
    blocked: list[str] = Field(description="Versions operators blocked from serving")


class ServingModel(ModelCard):
    """The champion's model card, with the coin's lifecycle state."""

    lifecycle: LifecycleState | None = Field(
        default=None, description="None until the lifecycle has decided on the coin"
    )


class ModelHistory(BaseModel):
    data: list[ModelChange]


class OperatorRequest(BaseModel):
    model: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9_.+-]*$",
        examples=["dist-4h@20261203-56c93a37"],
    )
    reason: str = Field(default="", max_length=300)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_id: str
    message: str


async def lifecycle_of(state: GatewayState, symbol: str) -> Lineup | None:
    return await state.store.lifecycle(symbol, state.common.interval)


def _state(lineup: Lineup) -> LifecycleState:
    return LifecycleState(
        champion=lineup.champion,
        gate=lineup.gate,
        since=lineup.since,
        pinned=lineup.pinned,
        blocked=sorted(lineup.blocked),
    )


@router.get("/model/{symbol}", response_model=ServingModel, responses=NOT_FOUND)
async def serving_model(symbol: Symbol, state: State) -> ServingModel:
    """The model serving ``symbol`` with its held-out evaluation against the baselines, and
    the coin's lifecycle state (champion, gate, pin, blocks). The serving model is the
    lifecycle's champion, or before the lifecycle decided, the model of the newest served
    forecast; 404 while neither is known, or while it has no card (the no-change
    baseline has none): never another model's card (a challenger's is often the newest)."""
    lineup = await lifecycle_of(state, symbol)
    latest = state.latest.get(symbol)
    serving = lineup.champion if lineup else str(latest.prediction.model) if latest else None
    if serving is None:
        raise ApiError(
            404, {"status": "error", "message": f"no model serves {symbol} yet: no champion known"}
        )
    card = await _card_of(state, symbol, serving)
    if card is None:
        raise ApiError(
            404, {"status": "error", "message": f"no model card for {serving} on {symbol} yet"}
        )
    return ServingModel(**card.model_dump(), lifecycle=_state(lineup) if lineup else None)


async def _card_of(state: GatewayState, symbol: str, model: str) -> ModelCard | None:
    """The card ``model`` published for ``symbol``, however many newer ones there are."""
    before = None
    while True:
        cards = await state.store.page(
            "models", symbol, state.common.interval, None, None, before, CARDS_READ
        )
        for card in cards:
            if isinstance(card, ModelCard) and str(card.model) == model:
                return card
        if len(cards) < CARDS_READ:
            return None
        last = cards[-1]
        if not isinstance(last, ModelCard):  # the models collection holds only cards
            return None
        before = (last.trained_at, last.event_id)


@router.get("/models/history", response_model=ModelHistory, responses=NOT_FOUND)
async def model_history(
    state: State,
    symbol: Annotated[str | None, Query(description="One coin; every coin when absent")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ModelHistory:
    """Promotions, demotions, gate switches, pins, blocks, new versions and refusals,
    newest first, with the evidence each rests on."""
    symbols = state.common.symbols
    if symbol is not None:
        if symbol.upper() not in symbols:
            raise ApiError(404, {"status": "error", "message": f"unknown symbol {symbol!r}"})
        symbols = [symbol.upper()]
    found = [
        change
        for s in symbols
        for change in await state.store.model_changes(s, state.common.interval, limit)
    ]
    found.sort(key=lambda c: (c.decided_at, c.event_id), reverse=True)
    return ModelHistory(data=found[:limit])


@router.post(
    "/models/{symbol}/{action}",
    response_model=Accepted,
    status_code=202,
    dependencies=[ApiKey],
    responses={
        **NOT_FOUND,
        401: {"description": "missing or wrong X-API-Key"},
        409: {"description": "nothing to undo, or not a model of this coin"},
    },
)
async def operator_request(
    symbol: Symbol,
    action: Literal["pin", "unpin", "block", "unblock"],
    request: OperatorRequest,
    state: State,
) -> Accepted:
    """Pin a champion on the coin (no promotions until unpinned; the gate still applies),
    or block a version from serving it (a blocked champion is replaced at once)."""
    known = await _known_models(state, symbol)
    if request.model not in known:
        raise ApiError(
            409,
            {
                "status": "error",
                "message": f"{request.model} has not run on "
                f"{symbol}; known: {', '.join(sorted(known))}",
            },
        )
    change = ModelChange(
        symbol=symbol,
        interval=state.common.interval,
        kind=REQUESTS[action],
        model=ModelRef.parse(request.model),
        by="operator",
        reason=request.reason or f"{action} requested through the API",
        decided_at=datetime.now(UTC),
    )
    await state.bus.publish([change])
    return Accepted(
        event_id=change.event_id,
        message=f"{action} {request.model} on {symbol}: the lifecycle applies it "
        "and announces the change (see /api/v1/models/history)",
    )


async def _known_models(state: GatewayState, symbol: str) -> set[str]:
    """Models with a card on the coin, versions registered for it, and no change."""
    cards = await state.store.page("models", symbol, state.common.interval, None, None, None, 1000)
    changes = await state.store.model_changes(symbol, state.common.interval, HISTORY_READ)
    return (
        {str(c.model) for c in cards if isinstance(c, ModelCard)}
        | {str(c.model) for c in changes}
        | {NAIVE}
    )
