from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptocast_common.metrics import TOLERANCE_PCT


class VerifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_VERIFIER_", extra="ignore")

    tolerance_pct: float = Field(
        default=TOLERANCE_PCT, gt=0,
        description="A prediction within this percentage of the actual close counts as correct.")
    retention_candles: int = Field(default=50, ge=2, description="How many intervals back "
                                   "pending predictions and closes are kept.")
