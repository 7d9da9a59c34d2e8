from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.settings import comma_separated


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    batch_size: int = Field(default=256, ge=1, description="Events persisted per bulk write.")
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default=[], description="Keys accepted in X-API-Key by the write and admin endpoints; "
        "none configured means those endpoints answer 401.")
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per client on public endpoints "
        "(bursts up to the same number); 0 turns the limit off.")
    max_body_bytes: int = Field(default=16_384, ge=1, description="Largest request body.")
    access_log: bool = Field(default=True, description="One JSON line per request.")
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_queue_size: int = Field(default=256, ge=1, description="Messages a WebSocket "
                                   "client may fall behind by before it is disconnected.")
    smtp_host: str | None = Field(default=None, description="SMTP server for price alerts; "
                                  "unset: alerts are accepted but not checked.")
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "CryptoCast <alerts@cryptocast.invalid>"

    @field_validator("cors_origins", "api_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_separated(value)
