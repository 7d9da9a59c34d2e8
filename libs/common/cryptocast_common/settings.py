"""Settings shared by every service (environment prefix ``CRYPTOCAST_``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.coins import symbol_of
from cryptocast_common.events import interval_delta


def comma_separated(value: object) -> object:
    """Accept ``"BTC,ETH"`` from the environment as well as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def key_value_pairs(value: object, key: Callable[[str], str], shape: str) -> object:
    """Accept ``"A=x,B=y"`` from the environment as well as a dict: {key("A"): "x", ...}.
    ``key`` checks and normalises each key (raising ValueError); ``shape`` names a pair in
    the error, e.g. ``SYMBOL=VALUE``."""
    value = comma_separated(value)
    if not isinstance(value, list):
        return value
    pairs = {}
    for item in value:
        name, sep, target = (part.strip() for part in str(item).partition("="))
        if not name or not sep or not target:
            raise ValueError(f"{item!r}: expected {shape} pairs separated by commas")
        pairs[key(name)] = target
    return pairs


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_", extra="ignore", use_attribute_docstrings=True
    )

    amqp_url: str | None = None
    """RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/. Unset: in-memory bus (only meaningful
    when all services run in one process, as `make up` does)."""
    namespace: str = Field(default="cryptocast", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Prefix of the exchange, queue and dead-letter names (<ns>.events, <ns>.<service>, <ns>.dlx,
    <ns>.dead). Tests use a unique one per run."""
    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_db: str = "cryptocast"
    symbols: Annotated[list[str], NoDecode] = ["BTC", "ETH", "SOL", "XRP"]
    interval: str = "4h"
    """The interval the original endpoints serve (and the trainer trains on)."""
    intervals: Annotated[list[str], NoDecode] = []
    """Every interval this deployment ingests, predicts and verifies, e.g. 4h,1d, among them
    CRYPTOCAST_INTERVAL. Empty: CRYPTOCAST_INTERVAL alone."""
    prefetch: int = Field(default=64, ge=1)
    """Unacked messages per consumer."""
    max_attempts: int = Field(default=5, ge=1)
    """Deliveries of a failing message before it is dead-lettered, counted across restarts and
    replicas (the broker's delivery limit enforces it)."""
    retry_delay_seconds: float = Field(default=1.0, gt=0, le=60)
    """Wait before a failed message is delivered again; doubles with each retry, up to a minute. The
    wait happens in a delay queue, not in the consumer."""
    log_level: str = "INFO"
    health_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve /healthz and /readyz on this port (consumers; the gateway's API has its own). Unset: no
    health server."""
    health_host: str = "0.0.0.0"

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        value = comma_separated(value)
        if isinstance(value, list):
            return [symbol_of(str(v)) for v in value]
        return value

    @field_validator("interval")
    @classmethod
    def _valid_interval(cls, value: str) -> str:
        interval_delta(value)
        return value

    @field_validator("intervals", mode="before")
    @classmethod
    def _split_intervals(cls, value: object) -> object:
        value = comma_separated(value)
        if isinstance(value, list):
            for interval in value:
                interval_delta(str(interval))
            return list(dict.fromkeys(value))
        return value

    @model_validator(mode="after")
    def _primary_is_served(self) -> CommonSettings:
        if not self.intervals:
            self.intervals = [self.interval]
        elif self.interval not in self.intervals:
            raise ValueError(
                f"CRYPTOCAST_INTERVAL {self.interval!r} must be one of CRYPTOCAST_INTERVALS "
                f"{self.intervals}: the original endpoints serve it"
            )
        return self

    def routing_keys(self, *event_types: str) -> list[str]:
        """Bindings for these event types of every symbol at every served interval."""
        return [f"{kind}.*.{interval}" for kind in event_types for interval in self.intervals]

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead"

    def queue_for(self, service: str) -> str:
        return f"{self.namespace}.{service}"
