from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptocast_common.metrics import TOLERANCE_PCT


class VerifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_VERIFIER_", extra="ignore")

    tolerance_pct: float = Field(
        default=TOLERANCE_PCT,
        gt=0,
        description="A prediction within this percentage of the actual close counts as correct.",
    )
    batch_size: int = Field(
        default=64,
        ge=1,
        description="Messages taken from the queue "
        "at once; invalid ones among them are dead-lettered together.",
    )
    reorder_candles: int = Field(
        default=50,
        ge=2,
        description="How far out of order a prediction may arrive: a close is kept until "
        "predictions have moved this many intervals past it, and a prediction waits until "
        "candles have moved this many intervals past its target.",
    )
    max_closes: int = Field(
        default=10_000,
        ge=10,
        description="Closes kept per series when predictions stop coming (inference down); "
        "older ones are given up, logged and counted.",
    )
