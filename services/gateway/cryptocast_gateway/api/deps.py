"""Shared state and ``Annotated`` dependency aliases for the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from cryptocast_common.bus import Bus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.cache import LatestPredictions
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import EventStore


class ApiError(Exception):
    """An error answered with ``status_code`` and ``payload`` as JSON (original shapes)."""

    def __init__(self, status_code: int, payload: dict[str, Any]) -> None:
        super().__init__(payload)
        self.status_code = status_code
        self.payload = payload


@dataclass
class GatewayState:
    store: EventStore
    latest: LatestPredictions
    bus: Bus
    common: CommonSettings
    settings: GatewaySettings

    @property
    def coins(self) -> list[str]:
        return [symbol.lower() for symbol in self.common.symbols]


async def check_ready(state: GatewayState) -> None:
    """Broker and database reachable."""
    await state.bus.ping()
    await state.store.ping()


def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway  # type: ignore[no-any-return]


State = Annotated[GatewayState, Depends(get_state)]


def known_symbol(coin: str, state: State) -> str:
    """The symbol for a configured coin in the path (``btc`` -> ``BTC``), else 404."""
    if coin.lower() not in state.coins:
        raise ApiError(404, {"status": "error", "message": f"unknown coin {coin!r}; known coins: "
                                                          f"{', '.join(state.coins)}"})
    return coin.upper()


Symbol = Annotated[str, Depends(known_symbol)]
