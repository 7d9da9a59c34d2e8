"""Symbols and the coins they name, one rule for every service and path.

A symbol is a coin's ticker as events carry it, upper case (``BTC``). Paths name a coin in
any case (``btc``, ``Btc``); the original API's alert bodies also by its CoinGecko id
(``bitcoin``), which the CoinGecko source fetches by.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

SYMBOL_PATTERN = r"^[A-Z0-9]{2,15}$"
SYMBOL_IN_ANY_CASE = r"^[A-Za-z0-9]{2,15}$"  # a path's symbol, before ``symbol_of``

COINGECKO_IDS = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "SOL": "solana",
    "XRP": "ripple",
    "ADA": "cardano",
    "BNB": "binancecoin",
    "DOGE": "dogecoin",
    "DOT": "polkadot",
    "LTC": "litecoin",
    "AVAX": "avalanche-2",
    "LINK": "chainlink",
    "TRX": "tron",
}
SYMBOL_BY_COINGECKO_ID = {coin_id: symbol for symbol, coin_id in COINGECKO_IDS.items()}


def symbol_of(name: str) -> str:
    """The symbol a coin's name in any case stands for: ``btc`` -> ``BTC``."""
    return name.upper()


def coin_of(symbol: str) -> str:
    """How the original API's paths name the coin a symbol names: ``BTC`` -> ``btc``."""
    return symbol.lower()


def configured_symbol(name: str, symbols: Collection[str]) -> str | None:
    """The configured symbol ``name`` names in any case (``btc``, ``Btc`` and ``BTC`` are
    ``BTC``), or None: the one rule of every path that names a coin."""
    symbol = symbol_of(name)
    return symbol if symbol in symbols else None


def unknown_symbols(names: Collection[str], symbols: Collection[str]) -> list[str]:
    """The names, in any case, that are no configured symbol, as symbols and sorted."""
    return sorted({symbol_of(name) for name in names if configured_symbol(name, symbols) is None})


def coin_names(symbols: Sequence[str]) -> list[str]:
    """How an alert's body may name a configured coin: ``btc``, ``BTC`` or its CoinGecko id
    (exactly these: the OpenAPI document lists them as an enum)."""
    names = [*map(coin_of, symbols), *map(symbol_of, symbols)]
    return names + [COINGECKO_IDS[s] for s in map(symbol_of, symbols) if s in COINGECKO_IDS]


def symbol_of_coin_name(name: str, symbols: Sequence[str]) -> str | None:
    """The configured symbol a name from ``coin_names`` stands for, or None."""
    if name not in coin_names(symbols):
        return None
    return symbol_of(SYMBOL_BY_COINGECKO_ID.get(name, name))
