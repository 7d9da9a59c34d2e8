"""Candle history from the gateway, used to rebuild windows after a restart or a hand-over."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import httpx

from cryptocast_common.events import Candle

log = logging.getLogger(__name__)


class HistoryUnavailable(RuntimeError):
    """Storage could not be read: the candle is retried later rather than left unpredicted."""


class CandleHistory(Protocol):
    async def before(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        """Up to ``limit`` candles closing at or before ``end``, oldest first; raises
        HistoryUnavailable when storage cannot answer."""
        ...


class GatewayCandleHistory:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def before(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        try:
            response = await self._client.get(
                f"/api/v1/candles/{symbol}",
                params={"interval": interval, "end": end.isoformat(), "limit": limit},
            )
            response.raise_for_status()
            return [Candle.model_validate(item) for item in response.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise HistoryUnavailable(f"candle history of {symbol}: {exc!r}") from exc
