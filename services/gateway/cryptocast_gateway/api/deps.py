"""Shared state and ``Annotated`` dependency aliases for the routes."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from cryptocast_common.coins import configured_symbol
from cryptocast_gateway.state import GatewayState


class ApiError(Exception):
    """An error answered with ``status_code`` and ``payload`` as JSON (original shapes)."""

    def __init__(self, status_code: int, payload: dict[str, Any]) -> None:
        super().__init__(payload)
        self.status_code = status_code
        self.payload = payload

    def response(self) -> JSONResponse:
        return JSONResponse(self.payload, self.status_code)


# Dependencies are coroutines on purpose: FastAPI runs plain functions in a thread pool,
# which cost more than everything else on the hot path together.
async def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]


def symbol_or_404(name: str, state: GatewayState, refusal: str) -> str:
    """The configured symbol ``name`` names in any case, else a 404 whose message is
    ``refusal`` with ``{name}``, ``{coins}`` (``btc, eth``) or ``{symbols}`` filled in."""
    symbol = configured_symbol(name, state.common.symbols)
    if symbol is None:
        known = {"coins": ", ".join(state.coins), "symbols": ", ".join(state.common.symbols)}
        message = refusal.format(name=repr(name), **known)
        raise ApiError(404, {"status": "error", "message": message})
    return symbol


async def known_symbol(coin: str, state: State) -> str:
    """The symbol for a configured coin in the path (``btc`` -> ``BTC``), else 404."""
    return symbol_or_404(coin, state, "unknown coin {name}; known coins: {coins}")


Symbol = Annotated[str, Depends(known_symbol)]


async def require_api_key(
    state: State,
    key: Annotated[
        str | None, Header(alias="X-API-Key", description="A key from CRYPTOCAST_GATEWAY_API_KEYS")
    ] = None,
) -> None:
    """401 unless ``X-API-Key`` is one of the configured keys (compared in constant time)."""
    offered = (key or "").encode()
    valid = [
        hmac.compare_digest(offered, k.get_secret_value().encode()) for k in state.settings.api_keys
    ]  # every key compared: no timing shortcut
    if not key or not any(valid):
        raise ApiError(401, {"status": "error", "message": "a valid X-API-Key header is required"})


ApiKey = Depends(require_api_key)
