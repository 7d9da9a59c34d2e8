"""CoinGecko's ids of the usual coins: the CoinGecko source fetches by them, and the
original API's clients may name a coin by them (``bitcoin`` for ``BTC``)."""

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
