"""Exchange OHLCV through ccxt's async API (Binance by default)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptocast_common.events import interval_delta
from cryptocast_common.runtime import ConfigurationError
from cryptocast_ingestor.datasets import Bar
from cryptocast_ingestor.sources import SourceError, UnsupportedInterval

log = logging.getLogger(__name__)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class ExchangeSource:
    """Pages through ``fetch_ohlcv`` with ``since``/``limit``; ccxt spaces the requests by
    the exchange's published rate limit (``enableRateLimit``)."""

    def __init__(
        self, exchange: Any, quote: str, markets: Mapping[str, str], page_limit: int
    ) -> None:
        self.exchange = exchange
        self.name = f"ccxt:{exchange.id}"
        self.quote = quote
        self.markets = markets
        self.page_limit = page_limit

    @classmethod
    def connect(
        cls, exchange_id: str, quote: str, markets: Mapping[str, str], page_limit: int
    ) -> ExchangeSource:
        import ccxt.async_support as ccxt

        if exchange_id not in ccxt.exchanges:
            raise ConfigurationError(f"ccxt knows no exchange {exchange_id!r}")
        exchange = getattr(ccxt, exchange_id)({"enableRateLimit": True})
        return cls(exchange, quote, markets, page_limit)

    def market(self, symbol: str) -> str:
        return self.markets.get(symbol, f"{symbol}/{self.quote}")

    def check_interval(self, interval: str) -> None:
        timeframes = getattr(self.exchange, "timeframes", None) or {}
        if interval not in timeframes:
            raise UnsupportedInterval(
                f"{self.name} has no {interval} candles; it offers "
                f"{', '.join(timeframes) or 'none'}"
            )

    async def fetch_closed(
        self, symbol: str, interval: str, since: datetime, now: datetime
    ) -> list[Bar]:
        import ccxt.async_support as ccxt

        step_ms = int(interval_delta(interval).total_seconds() * 1000)
        cursor, now_ms, bars = _ms(since), _ms(now), []
        while cursor + step_ms <= now_ms:
            try:
                page = await self.exchange.fetch_ohlcv(
                    self.market(symbol), interval, since=cursor, limit=self.page_limit
                )
            except ccxt.BaseError as error:  # network, rate limit, exchange-side errors
                raise SourceError(f"{self.name} {self.market(symbol)}: {error}") from error
            try:
                rows = [(int(row[0]), *(float(v) for v in row[1:6])) for row in page]
            except (TypeError, ValueError, IndexError) as error:
                raise SourceError(
                    f"{self.name} {self.market(symbol)}: malformed OHLCV row ({error})"
                ) from error
            closed = [row for row in rows if cursor <= row[0] and row[0] + step_ms <= now_ms]
            bars += [Bar(datetime.fromtimestamp(row[0] / 1000, UTC), *row[1:]) for row in closed]
            if not closed or len(page) < self.page_limit:
                break
            cursor = int(closed[-1][0]) + step_ms
        return bars

    async def close(self) -> None:
        await self.exchange.close()
