"""The exchange and CoinGecko sources against recorded answers; never the network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import ccxt.async_support as ccxt
import httpx
import pytest

from cryptocast_ingestor.datasets import Bar, read_bundle
from cryptocast_ingestor.sources import SourceError, UnsupportedInterval
from cryptocast_ingestor.sources.coingecko import DEMO_KEY_HEADER, CoinGeckoSource
from cryptocast_ingestor.sources.exchange import ExchangeSource

FIXTURES = Path(__file__).parents[1] / "fixtures"
BUNDLE = Path(__file__).parents[2] / "services/ingestor/cryptocast_ingestor/data"
H4 = timedelta(hours=4)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeExchange:
    """ccxt's async exchange surface, serving real Binance ADA/USDT 4h rows."""

    id = "fakebinance"
    timeframes: ClassVar[dict[str, str]] = {"1h": "1h", "4h": "4h", "1d": "1d"}

    def __init__(self, failures: list[Exception] | None = None) -> None:
        candles = read_bundle(BUNDLE / "binance/ADA_4h.csv.gz")
        self.rows = [
            [int(c.open_time.timestamp() * 1000), c.open, c.high, c.low, c.close, c.volume]
            for c in candles
        ]
        self.calls: list[tuple[str, str, int, int]] = []
        self.failures = failures or []
        self.closed = False

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list:
        self.calls.append((symbol, timeframe, since, limit))
        if self.failures:
            raise self.failures.pop(0)
        return [row for row in self.rows if row[0] >= since][:limit]

    async def close(self) -> None:
        self.closed = True


async def test_exchange_pages_with_since_and_limit_and_drops_the_forming_candle() -> None:
    exchange = FakeExchange()
    source = ExchangeSource(exchange, "USDT", {"XRP": "XRP/USD"}, page_limit=100)
    first = datetime.fromtimestamp(exchange.rows[0][0] / 1000, UTC)
    now = first + 250 * H4 + timedelta(hours=2)  # candle 250 is still forming
    bars = await source.fetch_closed("ADA", "4h", first, now)
    assert len(bars) == 250
    assert [b.open_time for b in bars] == [first + i * H4 for i in range(250)]
    assert bars[0] == Bar(first, *exchange.rows[0][1:])
    assert [call[2] for call in exchange.calls] == [
        exchange.rows[0][0] + i * 100 * 4 * 3600 * 1000 for i in range(3)
    ]
    assert {call[:2] for call in exchange.calls} == {("ADA/USDT", "4h")}
    assert source.market("XRP") == "XRP/USD"
    await source.close()
    assert exchange.closed


async def test_exchange_errors_become_retryable_source_errors() -> None:
    now = datetime(2021, 1, 1, tzinfo=UTC)
    source = ExchangeSource(FakeExchange([ccxt.NetworkError("connection reset")]), "USDT", {}, 500)
    with pytest.raises(SourceError, match="connection reset"):
        await source.fetch_closed("ADA", "4h", now - 10 * H4, now)
    broken = FakeExchange()
    broken.rows = [[broken.rows[0][0], 1.0, None, 1.0, 1.0, 1.0]]
    with pytest.raises(SourceError, match="malformed OHLCV row"):
        await ExchangeSource(broken, "USDT", {}, 500).fetch_closed(
            "ADA", "4h", datetime(2020, 1, 1, tzinfo=UTC), now
        )
    with pytest.raises(UnsupportedInterval, match="no 3h candles"):
        source.check_interval("3h")


def coingecko(handler: Any, sleeps: list[float] | None = None) -> CoinGeckoSource:
    client = httpx.AsyncClient(
        base_url="https://api.coingecko.com/api/v3",
        transport=httpx.MockTransport(handler),
        headers={DEMO_KEY_HEADER: "demo-key"},
    )

    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    return CoinGeckoSource(client, {}, sleep=sleep)


def recorded(request: httpx.Request) -> httpx.Response:
    assert request.headers[DEMO_KEY_HEADER] == "demo-key"
    name = request.url.path.rsplit("/", 1)[-1]
    return httpx.Response(
        200, json=json.loads((FIXTURES / f"coingecko/bitcoin_{name}.json").read_text())
    )


async def test_coingecko_candles_from_ohlc_and_market_chart() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return recorded(request)

    source = coingecko(handler)
    now = at("2026-08-15 12:00")  # the last recorded candle has just closed
    bars = await source.fetch_closed("BTC", "4h", now - 12 * H4, now)
    assert len(bars) == 12
    assert bars[-1].open_time == at("2026-08-15 08:00")  # CoinGecko stamps the close
    assert (bars[-1].open, bars[-1].high, bars[-1].low, bars[-1].close) == (
        63011.0,
        63011.0,
        62862.0,
        62960.0,
    )
    assert bars[-1].volume == pytest.approx(16475421043.131096 / 6)
    assert [r.url.path for r in requests] == [
        "/api/v3/coins/bitcoin/ohlc",
        "/api/v3/coins/bitcoin/market_chart",
    ]
    assert requests[0].url.params["days"] == "7"
    forming = await source.fetch_closed("BTC", "4h", now - 12 * H4, now - timedelta(hours=2))
    assert forming == bars[:-1]  # the candle closing at 12:00 was still forming at 10:00
    await source.close()


async def test_coingecko_waits_as_retry_after_says_on_429() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"}),
        httpx.Response(429, json={"error": "slow down"}),
    ]
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else recorded(request)

    source = coingecko(handler, sleeps)
    now = at("2026-08-15 12:00")
    assert len(await source.fetch_closed("BTC", "4h", now - 2 * H4, now)) == 2
    assert sleeps == [7.0, 4.0]  # Retry-After, then exponential backoff without one


@pytest.mark.parametrize(
    "body, message",
    [
        ({"error": "coin not found"}, "expected a list"),
        ([[1786795200000, 1.0, "x", 1.0, 1.0]], "malformed row"),
        ([[1786795200000, 1.0, 1.0]], "rows need 5 finite numbers"),
    ],
)
async def test_coingecko_malformed_answers_are_clear_errors(body: Any, message: str) -> None:
    source = coingecko(lambda request: httpx.Response(200, json=body))
    now = at("2026-08-15 12:00")
    with pytest.raises(SourceError, match=message):
        await source.fetch_closed("BTC", "4h", now - H4, now)


async def test_coingecko_limits_are_explicit() -> None:
    source = coingecko(lambda request: httpx.Response(500, text="boom"))
    with pytest.raises(UnsupportedInterval, match="only has 4h candles"):
        source.check_interval("1h")
    now = at("2026-08-15 12:00")
    with pytest.raises(SourceError, match="no CoinGecko id for ZZZ"):
        await source.fetch_closed("ZZZ", "4h", now - H4, now)
    with pytest.raises(SourceError, match="HTTP 500"):
        await source.fetch_closed("BTC", "4h", now - H4, now)
