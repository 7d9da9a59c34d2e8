from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.coins import symbol_of
from cryptocast_common.settings import key_value_pairs

BUNDLED_REPLAY = Path(__file__).parent / "data" / "coingecko"
BUNDLED_BINANCE = BUNDLED_REPLAY.parent / "binance_4h"  # 20 coins, 2017 to 2025-10-23


class IngestorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_INGESTOR_", extra="ignore", use_attribute_docstrings=True
    )

    source: Literal["replay", "exchange", "coingecko"] = "replay"
    """replay: bundled or your CSV files; exchange: live OHLCV through ccxt; coingecko: live from
    CoinGecko's free API (4h only)."""
    backfill: int = Field(default=200, ge=0)
    """Candles per symbol published at start (replay: before the paced part; live: the most recent
    ones)."""
    # replay
    replay_dir: Path | None = None
    """Folder of <SYMBOL>_<interval>.csv.gz bundles to replay; unset: the bundled CoinGecko
    candles of the four default coins, or the bundled Binance set (20 coins, to 2025-10-23)
    when a configured coin is not among them."""
    replay_live: int = Field(default=60, ge=0)
    """Candles per symbol held back from the backfill and published one step at a time."""
    pace_seconds: float = Field(default=5.0, ge=0)
    """Pause between paced steps."""
    # exchange
    exchange: str = "binance"
    """Any ccxt exchange id."""
    quote: str = "USDT"
    """Quote currency: BTC → BTC/USDT."""
    markets: Annotated[dict[str, str], NoDecode] = {}
    """Overrides of the market per symbol, e.g. XRP=XRP/USD."""
    page_limit: int = Field(default=500, ge=1, le=1000)
    """Candles per request."""
    # coingecko
    coingecko_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: SecretStr | None = None
    """Demo API key, sent as x-cg-demo-api-key."""
    coingecko_ids: Annotated[dict[str, str], NoDecode] = {}
    """Extra or changed coin ids, e.g. PEPE=pepe."""
    # live scheduling and data quality
    settle_seconds: float = Field(default=5.0, ge=0)
    """Wait after a candle's close before fetching it."""
    lag_retry_seconds: float = Field(default=60.0, gt=0)
    """Ask again this soon when a closed candle is not available yet."""
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    """Cap of the retry backoff after failures."""
    jump_sigmas: float = Field(default=10.0, gt=0)
    """A close this many standard deviations of recent log returns away waits for confirmation."""
    volatility_window: int = Field(default=50, ge=10)
    """Recent candles the volatility is measured on."""

    @field_validator("markets", "coingecko_ids", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        return key_value_pairs(value, symbol_of, "SYMBOL=VALUE")


def replay_folder(settings: IngestorSettings, symbols: list[str], interval: str) -> Path:
    """The folder to replay: the configured one, else the bundle that holds every symbol."""
    if settings.replay_dir is not None:
        return settings.replay_dir
    if all((BUNDLED_REPLAY / f"{s}_{interval}.csv.gz").exists() for s in symbols):
        return BUNDLED_REPLAY
    return BUNDLED_BINANCE
