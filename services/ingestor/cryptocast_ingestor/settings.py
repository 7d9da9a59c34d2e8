from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_REPLAY = Path(__file__).parent / "data" / "coingecko"


class IngestorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_INGESTOR_", extra="ignore")

    source: Literal["replay"] = "replay"
    replay_dir: Path = Field(
        default=BUNDLED_REPLAY,
        description="Folder of <SYMBOL>_<interval>.csv.gz bundles to replay.")
    backfill: int = Field(default=200, ge=0, description="Candles per symbol published at once "
                          "at start, before the paced part.")
    replay_live: int = Field(default=60, ge=0, description="Candles per symbol held back from "
                             "the backfill and published one step at a time.")
    pace_seconds: float = Field(default=5.0, ge=0, description="Pause between paced steps.")
