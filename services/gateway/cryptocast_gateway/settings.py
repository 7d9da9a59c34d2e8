from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.events import ChangeKind
from cryptocast_common.settings import comma_separated


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_GATEWAY_", extra="ignore", use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    batch_size: int = Field(default=256, ge=1)
    """Events persisted per bulk write."""
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    """Keys accepted in X-API-Key by the write and admin endpoints; none configured means those
    endpoints answer 401."""
    rate_limit_per_minute: int = Field(default=600, ge=0)
    """Requests per minute per client on public endpoints (bursts up to the same number); 0 turns
    the limit off."""
    max_body_bytes: int = Field(default=16_384, ge=1)
    """Largest request body."""
    access_log: bool = True
    """One JSON line per request."""
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_queue_size: int = Field(default=256, ge=1)
    """Messages a WebSocket client may fall behind by before it is disconnected."""
    stream_max_clients: int = Field(default=1000, ge=1)
    """WebSocket stream clients this replica serves at once; more are refused with close code
    1013."""
    stream_max_clients_per_address: int = Field(default=20, ge=1)
    """WebSocket stream clients one client address may have open at once; more are refused with
    close code 1013."""
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []
    """Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed: the client is the
    right-most address in it that is not one of these. Empty: the connecting address is the
    client."""
    max_header_bytes: int = Field(default=32_768, ge=1024)
    """Largest request line plus headers; larger gets 431 and the connection closed."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """Time a client has to send a request's line and headers (from connecting, or from the first
    byte of a later request); a slower one (slowloris) gets 408 and the connection closed."""
    smtp_host: str | None = None
    """SMTP server for price alerts; unset: alerts are accepted but not checked."""
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "CryptoCast <alerts@cryptocast.invalid>"
    webhook_urls: Annotated[list[str], NoDecode] = []
    """Comma-separated URLs that get every notification as signed JSON."""
    webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key of the webhooks' X-CryptoCast-Signature."""
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    discord_webhook_url: SecretStr | None = None
    notify_changes: Annotated[list[str], NoDecode] = [
        "promoted",
        "demoted",
        "gate_opened",
        "gate_closed",
        "refused",
    ]
    """Lifecycle change kinds sent to the channels; empty: none."""
    notify_attempts: int = Field(default=4, ge=1, le=10)
    """Tries per delivery."""
    notify_backoff_seconds: float = Field(default=1.0, ge=0)
    """Wait before the first retry, doubling after each."""
    notify_max_backoff_seconds: float = Field(default=30.0, ge=0)
    notify_timeout_seconds: float = Field(default=10.0, gt=0)
    """Per attempt."""
    alert_webhooks: bool = True
    """POST /alert accepts a webhook of the alert's own."""
    alert_webhook_allow_http: bool = False
    """Accept http:// alert webhooks (tests); https only otherwise."""
    alert_webhook_allow_private: bool = False
    """Let alert webhooks reach loopback, private and link-local addresses (tests); refused
    otherwise, against server-side request forgery."""

    @field_validator(
        "cors_origins", "api_keys", "trusted_proxies", "webhook_urls", "notify_changes",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("notify_changes")
    @classmethod
    def _known_changes(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(get_args(ChangeKind))
        if unknown:
            raise ValueError(f"unknown change kinds {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _signed_webhooks(self) -> GatewaySettings:
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("CRYPTOCAST_GATEWAY_WEBHOOK_URLS needs _WEBHOOK_SECRET to sign with")
        if bool(self.telegram_bot_token) != bool(self.telegram_chat_id):
            raise ValueError("Telegram needs both _TELEGRAM_BOT_TOKEN and _TELEGRAM_CHAT_ID")
        return self
