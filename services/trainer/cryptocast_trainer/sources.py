"""Where the trainer reads candles: the gateway's REST API (the deployed source) or the
bundled CSV files (offline runs and tests).

The gateway owns the ``candles`` collection and its document layout; its ``/api/v1``
routes are the versioned contract, so the trainer reads through them rather than through
the gateway's database (and needs no access to it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

from cryptocast_inference.series import read_series

PAGE = 1000  # the gateway's largest page of candles


class SourceError(RuntimeError):
    """Candles could not be read; the message says from where and why."""


@dataclass(frozen=True)
class CandleSeries:
    symbol: str
    times: np.ndarray  # open times, unix seconds, strictly increasing
    closes: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


class CandleSource(Protocol):
    name: str

    async def series(self, symbol: str, interval: str, limit: int) -> CandleSeries:
        """The newest ``limit`` closed candles of the symbol, oldest first (fewer if the
        source has fewer)."""
        ...


def _series(symbol: str, rows: dict[float, float]) -> CandleSeries:
    times = np.array(sorted(rows), dtype=np.float64)
    return CandleSeries(symbol, times, np.array([rows[t] for t in times], dtype=np.float64))


class GatewayCandleSource:
    """``GET /api/v1/candles/{symbol}?interval=&end=&limit=``, paged backwards by ``end``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.name = f"gateway {client.base_url}"

    async def series(self, symbol: str, interval: str, limit: int) -> CandleSeries:
        rows: dict[float, float] = {}
        end: str | None = None
        while len(rows) < limit:
            params: dict[str, Any] = {"interval": interval, "limit": min(PAGE, limit - len(rows))}
            if end is not None:
                params["end"] = end
            try:
                response = await self.client.get(f"/api/v1/candles/{symbol}", params=params)
                response.raise_for_status()
                page = response.json()["data"]
            except (httpx.HTTPError, KeyError, ValueError) as error:
                raise SourceError(f"{self.name}: candles of {symbol}: {error!r}") from error
            new = 0
            for candle in page:
                opened = datetime.fromisoformat(candle["open_time"].replace("Z", "+00:00"))
                new += opened.timestamp() not in rows
                rows[opened.timestamp()] = float(candle["close"])
            if not page or not new:
                break
            # the candle before the oldest one closes when the oldest one opens
            end = page[0]["open_time"]
        return _series(symbol, rows)


class CsvCandleSource:
    """``<folder>/<SYMBOL>_<interval>.csv.gz`` files such as the bundled Binance history."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"files {folder}"

    async def series(self, symbol: str, interval: str, limit: int) -> CandleSeries:
        path = self.folder / f"{symbol}_{interval}.csv.gz"
        if not await asyncio.to_thread(path.is_file):
            raise SourceError(f"{self.name}: no {path.name}")
        data = await asyncio.to_thread(read_series, path, symbol)
        return CandleSeries(symbol, data.times[-limit:], data.ohlcv[-limit:, 3])
