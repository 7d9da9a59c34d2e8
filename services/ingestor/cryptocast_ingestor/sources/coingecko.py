"""CoinGecko over httpx, the original CryptoCast's source, kept as the fallback.

Its limits, from CoinGecko's documentation: ``/coins/{id}/ohlc`` chooses the candle size
from ``days`` (1-2 days: 30 minutes, 3-30 days: 4 hours, longer: 4 days), so only 4-hour
candles of the last 30 days are available; the timestamp is the candle's close; there is
no per-candle volume, so volume is estimated from ``/coins/{id}/market_chart``'s 24-hour
rolling volume at the close, divided by the candles in a day; responses are cached for
15 minutes, so a candle may appear up to 15 minutes after it closed. The keyless and demo
plans allow a few dozen calls a minute and answer 429 beyond that.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cryptocast_common.coins import COINGECKO_IDS
from cryptocast_common.events import interval_delta
from cryptocast_ingestor.datasets import Bar
from cryptocast_ingestor.sources import SourceError, UnsupportedInterval

log = logging.getLogger(__name__)

OHLC_DAYS = (7, 14, 30)  # the values of ``days`` that give 4-hour candles
DEMO_KEY_HEADER = "x-cg-demo-api-key"
MAX_429_RETRIES = 4


class CoinGeckoSource:
    name = "coingecko"

    def __init__(
        self,
        client: httpx.AsyncClient,
        coin_ids: Mapping[str, str],
        vs_currency: str = "usd",
        max_wait: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.coin_ids = {**COINGECKO_IDS, **coin_ids}
        self.vs_currency = vs_currency
        self.max_wait = max_wait
        self.sleep = sleep

    @classmethod
    def connect(
        cls, base_url: str, api_key: str | None, coin_ids: Mapping[str, str]
    ) -> CoinGeckoSource:
        headers = {DEMO_KEY_HEADER: api_key} if api_key else {}
        return cls(httpx.AsyncClient(base_url=base_url, headers=headers, timeout=20), coin_ids)

    def check_interval(self, interval: str) -> None:
        if interval != "4h":
            raise UnsupportedInterval(
                "CoinGecko's free OHLC endpoint only has 4h candles "
                f"(asked for {interval}); use the exchange source"
            )

    def coin_id(self, symbol: str) -> str:
        if symbol not in self.coin_ids:
            raise SourceError(
                f"no CoinGecko id for {symbol}; set CRYPTOCAST_INGESTOR_COINGECKO_IDS={symbol}=<id>"
            )
        return self.coin_ids[symbol]

    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        """GET with 429 handling: wait as long as Retry-After says (or back off), a few times."""
        for attempt in range(1, MAX_429_RETRIES + 2):
            try:
                response = await self.client.get(path, params=params)
            except httpx.HTTPError as error:
                raise SourceError(f"CoinGecko {path}: {error!r}") from error
            if response.status_code != 429:
                break
            wait = min(self.max_wait, _retry_after(response) or 2.0**attempt)
            log.warning(
                "CoinGecko rate limit hit, waiting",
                extra={"path": path, "wait_seconds": wait, "attempt": attempt},
            )
            await self.sleep(wait)
        if response.status_code != 200:
            raise SourceError(
                f"CoinGecko {path}: HTTP {response.status_code} {response.text[:200]!r}"
            )
        try:
            return response.json()
        except ValueError as error:
            raise SourceError(f"CoinGecko {path}: response is not JSON") from error

    async def fetch_closed(
        self, symbol: str, interval: str, since: datetime, now: datetime
    ) -> list[Bar]:
        self.check_interval(interval)
        step = interval_delta(interval)
        needed = (now - since) / timedelta(days=1)
        days = next((d for d in OHLC_DAYS if d >= needed), OHLC_DAYS[-1])
        path = f"/coins/{self.coin_id(symbol)}"
        params = {"vs_currency": self.vs_currency, "days": days}
        candles = _rows(await self._get(f"{path}/ohlc", params), 5, f"{path}/ohlc")
        volumes = _volume_by_time(await self._get(f"{path}/market_chart", params), path)
        per_day = timedelta(days=1) / step
        bars = []
        for row in candles:
            close_time = datetime.fromtimestamp(row[0] / 1000, UTC)
            open_time = close_time - step
            if open_time < since or close_time > now:
                continue  # already published, or still forming
            volume = _nearest(volumes, row[0]) / per_day
            bars.append(Bar(open_time, row[1], row[2], row[3], row[4], volume))
        return bars

    async def close(self) -> None:
        await self.client.aclose()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _rows(payload: Any, width: int, what: str) -> list[list[float]]:
    if not isinstance(payload, list):
        raise SourceError(f"CoinGecko {what}: expected a list, got {type(payload).__name__}")
    try:
        rows = [[float(v) for v in row[:width]] for row in payload]
    except (TypeError, ValueError) as error:
        raise SourceError(f"CoinGecko {what}: malformed row ({error})") from error
    if any(len(row) < width or not all(map(math.isfinite, row)) for row in rows):
        raise SourceError(f"CoinGecko {what}: rows need {width} finite numbers")
    return rows


def _volume_by_time(chart: Any, path: str) -> list[list[float]]:
    if not isinstance(chart, dict) or "total_volumes" not in chart:
        raise SourceError(f"CoinGecko {path}/market_chart: no total_volumes")
    return _rows(chart["total_volumes"], 2, f"{path}/market_chart")


def _nearest(samples: list[list[float]], at_ms: float) -> float:
    """The 24-hour volume sample closest to the candle's close (hourly samples at 30 days)."""
    if not samples:
        return 0.0
    return min(samples, key=lambda sample: abs(sample[0] - at_ms))[1]
