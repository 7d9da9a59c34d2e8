from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_INFERENCE_", extra="ignore")

    predictor: Literal["naive"] = Field(default="naive", description="Which predictor serves.")
    gateway_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where to fetch candle history when a window is incomplete (after a restart).")
    batch_size: int = Field(default=100, ge=1, description="Candles predicted in one batch.")
