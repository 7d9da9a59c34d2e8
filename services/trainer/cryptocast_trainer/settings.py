"""The trainer's settings (environment prefix ``CRYPTOCAST_TRAINER_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.settings import comma_separated
from cryptocast_inference.settings import SHIPPED_MODEL
from cryptocast_trainer.schedule import parse_schedule


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_TRAINER_", extra="ignore", use_attribute_docstrings=True
    )

    schedule: str = "daily"
    """How often to retrain: daily, hourly, 'every 6h' (s, m, h, d), or seconds; 'off' trains only
    when asked (POST /train)."""
    run_on_start: bool = False
    """Train once right after starting."""
    gateway_url: str = "http://127.0.0.1:8000"
    """Where to read stored candles (REST API v1)."""
    history_candles: int = Field(default=4380, ge=300)
    """Newest candles per symbol to train on (4380: 2 years)."""
    validation_candles: int = Field(default=540, ge=50)
    """Newest candles per symbol held out: the version is fitted on the candles before them and
    scored on them (540: 90 days of 4-hour candles)."""
    model_name: str = Field(default="dist-4h", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    base_model: str = SHIPPED_MODEL
    """The registered distribution model whose selection (volatility half-life, seasonal period,
    point and P(up) models) is refitted on new candles."""
    keep_last: int = Field(default=10, ge=1)
    """Versions of each model the registry keeps (retention)."""
    protected_models: Annotated[list[str], NoDecode] = []
    """Extra name@version refs retention never removes; every version that was ever champion
    and every bundled one are kept anyway."""
    seed_bundled: bool = True
    """Register the bundled artifacts in the registry on start."""
    host: str = "0.0.0.0"
    port: int = Field(default=8010, ge=0, le=65535)
    """POST /train, /healthz, /readyz, /metrics."""
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    """Keys accepted in X-API-Key by POST /train; none configured means it answers 401."""

    @field_validator("api_keys", "protected_models", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @property
    def schedule_seconds(self) -> float | None:
        return parse_schedule(self.schedule)
