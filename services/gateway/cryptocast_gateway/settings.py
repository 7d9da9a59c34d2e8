from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.settings import comma_separated


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    batch_size: int = Field(default=256, ge=1, description="Events persisted per bulk write.")
    cors_origins: Annotated[list[str], NoDecode] = ["*"]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_separated(value)
