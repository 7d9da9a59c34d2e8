"""The events every service exchanges: closed candles, predictions and verifications.

Events are frozen pydantic models with a deterministic ``event_id`` derived from their
payload, so a redelivered message or a re-run of the pipeline maps to the same id and every
write keyed by it is idempotent. ``schema_version`` changes only for incompatible changes;
consumers reject versions they do not know (see ``decode_event``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from cryptocast_common.coins import SYMBOL_PATTERN
from cryptocast_common.prices import Price, Volume, brackets

# 2 added the forecast distribution to predictions and its scoring to verifications; 3 the
# lifecycle's roles and gate; 4 the horizon of verifications (predictions several candles
# ahead). Events of earlier versions, without those fields, are still accepted.
SCHEMA_VERSION = 4
SUPPORTED_SCHEMA_VERSIONS = frozenset({1, 2, 3, 4})
MAX_HORIZON = 10_000  # candles ahead

_INTERVAL_RE = re.compile(r"^([1-9][0-9]*)([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


_MAX_INTERVAL_SECONDS = 366 * 86400


def interval_delta(interval: str) -> timedelta:
    """``"4h"`` -> 4 hours. Raises ValueError for anything but ``<n><m|h|d|w>`` of a year at
    most."""
    match = _INTERVAL_RE.match(interval)
    if not match:
        raise ValueError(f"interval {interval!r} is not of the form <n><m|h|d|w>, e.g. 4h")
    digits, unit = match.groups()
    seconds = int(digits) * _UNIT_SECONDS[unit] if len(digits) <= 8 else _MAX_INTERVAL_SECONDS + 1
    if seconds > _MAX_INTERVAL_SECONDS:
        raise ValueError(f"interval {interval!r} is longer than a year")
    return timedelta(seconds=seconds)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to_interval(moment: datetime, interval: str) -> datetime:
    """The start of the ``interval``-long bucket (aligned to the Unix epoch) holding ``moment``."""
    step = interval_delta(interval)
    return _EPOCH + ((moment - _EPOCH) // step) * step


def _check_interval(value: str) -> str:
    interval_delta(value)
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, the form used inside event ids."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def _to_millisecond(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# A moment stamped by a clock, as MongoDB keeps it (to the millisecond): read back, it is the
# same moment, so the id derived from it still holds.
ClockDatetime = Annotated[UtcDatetime, AfterValidator(_to_millisecond)]
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["BTC"])]
Interval = Annotated[str, AfterValidator(_check_interval), Field(examples=["4h"])]


def _no_default(schema: dict[str, Any]) -> None:
    """A field whose default is filled in by a validator: its schema shows no default."""
    schema.pop("default", None)


class _Frozen(BaseModel):
    # Serialised events always carry every field, defaulted or not: the schema says so.
    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_serialization_defaults_required=True
    )


class EventBase(_Frozen):
    """Fields every event carries; subclasses define ``type`` and how their id is derived."""

    event_id: str = ""
    schema_version: int = SCHEMA_VERSION
    symbol: Symbol
    interval: Interval
    # When omitted, taken from the field named by _occurred_at_from (a before-validator).
    occurred_at: UtcDatetime = Field(default=None, json_schema_extra=_no_default)  # type: ignore[assignment]  # never None: filled before validation

    _occurred_at_from: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _default_occurred_at(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("occurred_at") is None:
            source: Any = data
            for key in cls._occurred_at_from.split("."):
                source = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
            return {**data, "occurred_at": source}
        return data

    @model_validator(mode="after")
    def _derive_event_id(self) -> EventBase:
        expected = self.derive_id()
        if not self.event_id:
            object.__setattr__(self, "event_id", expected)
        elif self.event_id != expected:
            raise ValueError(
                f"event_id {self.event_id!r} does not match the id derived from the payload "
                f"{expected!r}"
            )
        return self

    def derive_id(self) -> str:
        raise NotImplementedError

    @property
    def routing_key(self) -> str:
        return f"{self.type}.{self.symbol}.{self.interval}"  # type: ignore[attr-defined]  # each event class declares its type

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class Candle(EventBase):
    """One closed OHLCV candle; ``close_time`` is ``open_time`` plus the interval."""

    type: Literal["candle"] = "candle"
    open_time: UtcDatetime
    close_time: UtcDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume
    source: str = Field(min_length=1)

    _occurred_at_from: ClassVar[str] = "close_time"

    @model_validator(mode="after")
    def _check_shape(self) -> Candle:
        if self.close_time - self.open_time != interval_delta(self.interval):
            raise ValueError(
                f"close_time - open_time must equal the interval {self.interval}, "
                f"got {self.close_time - self.open_time}"
            )
        if not brackets(self.open, self.high, self.low, self.close):
            raise ValueError("high/low do not bracket open and close")
        return self

    def derive_id(self) -> str:
        return self.id_for(self.symbol, self.interval, self.open_time)

    @staticmethod
    def id_for(symbol: str, interval: str, open_time: datetime) -> str:
        """The id of the candle of ``symbol`` opening at ``open_time``."""
        return f"candle:{symbol}:{interval}:{iso_utc(open_time)}"


Role = Literal["champion", "challenger", "baseline"]
Gate = Literal["open", "closed"]


class ModelRef(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", examples=["lstm"])
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", examples=["1"])

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``name@version``, as configuration and the API write it."""
        name, _, version = text.partition("@")
        return cls(name=name, version=version)


class ModelSkill(_Frozen):
    """How the model did on held-out data when it was trained, against the no-change forecast.

    Sent with every prediction so a subscriber can tell a useful model from one that does
    not beat "the price stays where it is" (``beats_naive`` false).
    """

    mase: float | None = Field(description="MAE over the naive forecast's MAE; < 1 is better")
    directional_accuracy: float | None = Field(ge=0, le=1)
    beats_naive: bool


class PredictionInterval(_Frozen):
    """A central prediction interval for the target close."""

    lower: Price
    upper: Price

    @model_validator(mode="after")
    def _ordered(self) -> PredictionInterval:
        if self.lower > self.upper:
            raise ValueError("lower must not be above upper")
        return self

    def holds(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def width_pct(self, reference: float) -> float:
        return (self.upper - self.lower) / reference * 100


class BasedOn(_Frozen):
    """The last closed candle a prediction was made from."""

    close_time: UtcDatetime
    close: Price


class Prediction(EventBase):
    """A forecast of the close of the candle that closes at ``target_time``."""

    type: Literal["prediction"] = "prediction"
    based_on: BasedOn
    target_time: UtcDatetime
    predicted_close: Price
    model: ModelRef
    skill: ModelSkill | None = None  # None for the baselines themselves
    horizon: int = Field(
        default=1, ge=1, le=MAX_HORIZON, description="Candles ahead: target_time's distance"
    )
    interval_80: PredictionInterval | None = Field(
        default=None, description="Central 80% prediction interval for the target close"
    )
    interval_95: PredictionInterval | None = Field(
        default=None, description="Central 95% prediction interval for the target close"
    )
    p_up: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Probability that the target close is above based_on.close",
    )
    role: Role | None = Field(
        default=None,
        description="champion: what the API serves for the symbol; challenger: scored beside "
        "it; baseline: no change. None before schema version 3.",
    )
    gate: Gate | None = Field(
        default=None,
        description="The champion's live-skill gate: open, it serves its own point forecast; "
        "closed (too few verdicts, or significantly worse than no change lately), "
        "predicted_close is the no-change forecast and model_close the model's own",
    )
    model_close: Price | None = Field(
        default=None, description="The model's own point forecast when the gate replaced it"
    )

    _occurred_at_from: ClassVar[str] = "based_on.close_time"

    @model_validator(mode="after")
    def _check_distribution(self) -> Prediction:
        given = [self.interval_80 is not None, self.interval_95 is not None, self.p_up is not None]
        if any(given) and not all(given):
            raise ValueError("interval_80, interval_95 and p_up come together or not at all")
        if (
            self.interval_80
            and self.interval_95
            and not (
                self.interval_95.lower <= self.interval_80.lower
                and self.interval_80.upper <= self.interval_95.upper
            )
        ):
            raise ValueError("interval_95 must contain interval_80")
        if (self.gate == "closed") != (self.model_close is not None):
            raise ValueError("model_close comes with a closed gate, and only with one")
        if self.gate is not None and self.role != "champion":
            raise ValueError("only the champion has a gate")
        return self

    @property
    def own_close(self) -> float:
        """The model's own point forecast, whatever the gate served."""
        return self.predicted_close if self.model_close is None else self.model_close

    @model_validator(mode="after")
    def _check_target(self) -> Prediction:
        expected = self.based_on.close_time + self.horizon * interval_delta(self.interval)
        if self.target_time != expected:
            raise ValueError(
                "target_time must be based_on.close_time + horizon x interval = "
                f"{iso_utc(expected)}"
            )
        return self

    def derive_id(self) -> str:
        # One step ahead keeps the id it had before horizons: a stored prediction keeps its id.
        ahead = "" if self.horizon == 1 else f":h{self.horizon}"
        return (
            f"prediction:{self.model}:{self.symbol}:{self.interval}"
            f"{ahead}:{iso_utc(self.target_time)}"
        )


class Verification(EventBase):
    """The verdict on one prediction once its target candle has closed.

    ``direction_correct`` is None when either the predicted or the actual change is exactly
    zero: a tie says nothing about direction and is left out of directional accuracy.
    """

    type: Literal["verification"] = "verification"
    prediction_id: str = Field(pattern=r"^prediction:")
    model: ModelRef
    target_time: UtcDatetime
    horizon: int = Field(default=1, ge=1, le=MAX_HORIZON, description="The prediction's")
    based_on_time: UtcDatetime
    based_on_close: Price
    predicted_close: Price
    actual_close: Price
    error_pct: float = Field(ge=0)
    tolerance_pct: float = Field(gt=0)
    within_tolerance: bool
    direction_correct: bool | None
    naive_error_pct: float = Field(ge=0)
    # Scoring of the forecast distribution; None when the prediction had none (version 1).
    inside_80: bool | None = None
    inside_95: bool | None = None
    width_80_pct: float | None = Field(
        default=None, ge=0, description="Width of the 80% interval, in percent of based_on_close"
    )
    width_95_pct: float | None = Field(default=None, ge=0)
    went_up: bool | None = Field(
        default=None,
        description="Whether the actual close was above based_on_close; None on no change",
    )
    brier: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="(p_up - went_up)^2, "
        "this prediction's term of the Brier score; None on no change",
    )
    role: Role | None = None
    gate: Gate | None = None
    model_error_pct: float | None = Field(
        default=None,
        ge=0,
        description="Error of the model's own point forecast when the gate served no change "
        "instead (error_pct is then the no-change error); what the gate judges the model by",
    )

    _occurred_at_from: ClassVar[str] = "target_time"

    def derive_id(self) -> str:
        return f"verification:{self.prediction_id}"

    @property
    def own_error_pct(self) -> float:
        """The error of the model's own forecast, gated or not."""
        return self.error_pct if self.model_error_pct is None else self.model_error_pct


class ForecastScore(_Frozen):
    """One forecast's held-out metrics (see cryptocast_common.metrics)."""

    n: int
    mae: float | None
    rmse: float | None
    mape: float | None
    mase: float | None
    directional_accuracy: float | None
    direction_ties: int
    within_2pct: float | None


class ModelCard(EventBase):
    """The model that serves a symbol and interval, and how it did on held-out data.

    Inference publishes one per symbol when it starts, so the gateway can say which model
    is active and what its evaluation was.
    """

    type: Literal["model"] = "model"
    model: ModelRef
    trained_at: UtcDatetime
    features: list[str]
    window: int = Field(ge=1, description="Candles per input, after the features' warm-up")
    horizon: int = Field(default=1, ge=1)
    trained_from: UtcDatetime
    trained_to: UtcDatetime
    evaluation: dict[str, ForecastScore] = Field(
        description="Held-out test metrics of the model and of each baseline"
    )
    beats_naive: bool

    _occurred_at_from: ClassVar[str] = "trained_at"

    def derive_id(self) -> str:
        return f"model:{self.model}:{self.symbol}:{self.interval}"


class Evidence(_Frozen):
    """The live record a lifecycle decision rests on: the last ``n`` verdicts on the symbol."""

    n: int = Field(ge=0)
    mae_ratio: float | None = Field(
        allow_inf_nan=False,
        description="MAE of the model's own forecasts relative to that of the reference "
        "(no change, or the champion for a promotion) on the same candles",
    )
    dm: float | None = Field(
        allow_inf_nan=False,
        description="Diebold-Mariano statistic of the absolute errors minus the reference's "
        "(positive: worse; beyond ±1.96 significant at 5%)",
    )
    against: Literal["naive", "champion"]


ChangeKind = Literal[
    "gate_opened",
    "gate_closed",
    "promoted",
    "demoted",
    "pinned",
    "unpinned",
    "blocked",
    "unblocked",
    "registered",  # a new version is available to run as a challenger (the trainer)
    "refused",  # a version could not be loaded: hash or features do not match (inference)
]


class ModelChange(EventBase):
    """A change of which model serves a symbol, or of how: published by the lifecycle policy
    (``by`` policy), or asked for by an operator through the API (``by`` operator) and then
    applied by the policy, which publishes the effective change. The trainer announces a new
    version (``registered``) and inference one it could not load (``refused``)."""

    type: Literal["model_change"] = "model_change"
    kind: ChangeKind
    model: ModelRef = Field(description="The model the change is about (the new champion)")
    previous: ModelRef | None = Field(default=None, description="The champion it replaced")
    evidence: Evidence | None = None
    by: Literal["policy", "operator", "trainer", "inference"]
    reason: str = Field(max_length=500)
    decided_at: ClockDatetime

    _occurred_at_from: ClassVar[str] = "decided_at"

    def derive_id(self) -> str:
        return (
            f"model_change:{self.by}:{self.symbol}:{self.interval}:{self.kind}:{self.model}:"
            f"{iso_utc(self.decided_at)}"
        )


class CoinAdded(EventBase):
    """A coin an operator added while the deployment runs, at one of its intervals: the
    ingestor backfills and follows it, and it is served no change until its own live record
    opens the gate."""

    type: Literal["coin_added"] = "coin_added"
    added_at: ClockDatetime
    reason: str = Field(max_length=500)

    _occurred_at_from: ClassVar[str] = "added_at"

    def derive_id(self) -> str:
        # Once per coin and interval: adding it again is the same event.
        return f"coin_added:{self.symbol}:{self.interval}"


Event = Candle | Prediction | Verification | ModelCard | ModelChange | CoinAdded
EVENT_TYPES: dict[
    str,
    type[Candle]
    | type[Prediction]
    | type[Verification]
    | type[ModelCard]
    | type[ModelChange]
    | type[CoinAdded],
] = {
    "candle": Candle,
    "prediction": Prediction,
    "verification": Verification,
    "model": ModelCard,
    "model_change": ModelChange,
    "coin_added": CoinAdded,
}


class InvalidEvent(ValueError):
    """A message body that is not a valid event of a known type and schema version."""


def _describe(error: ValidationError, event_type: str) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "(event)"
        parts.append(f"{event_type}.{where}: {item['msg']}")
    return "; ".join(parts)


MAX_BODY_BYTES = 64 * 1024  # events are well under 2 KB
MAX_NESTING = 16  # events nest three levels deep


def _nesting_depth(body: bytes) -> int:
    """Deepest ``[``/``{`` nesting outside JSON strings, computed without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_json(body: bytes) -> Any:
    """``json.loads`` within bounds: size and nesting are checked before parsing, so no body
    can exhaust memory or the recursion limit; NaN and Infinity are refused."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidEvent(f"body is {len(body)} bytes, more than the {MAX_BODY_BYTES} allowed")
    # Counting brackets is C-speed; only a body with many of them gets the exact scan.
    if body.count(b"[") + body.count(b"{") > MAX_NESTING and _nesting_depth(body) > MAX_NESTING:
        raise InvalidEvent(f"body nests deeper than {MAX_NESTING} levels")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is one
        raise InvalidEvent(f"body is not JSON: {exc}") from exc


def decode_event(body: bytes, content_type: str | None = None) -> Event:
    """Parse a message body into an event, or raise InvalidEvent naming what is wrong.

    Whatever the body, InvalidEvent is the only exception it raises."""
    if content_type not in (None, "", "application/json"):
        raise InvalidEvent(f"content type {content_type!r} is not application/json")
    data = _parse_json(body)
    if not isinstance(data, dict):
        raise InvalidEvent("body is not a JSON object")
    event_type = data.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None or not isinstance(event_type, str):
        raise InvalidEvent(
            f"type: unknown event type {_shown(event_type)}, expected one of {sorted(EVENT_TYPES)}"
        )
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise InvalidEvent(
            f"{event_type}.schema_version: unsupported version "
            f"{_shown(version)}, this consumer knows "
            f"{sorted(SUPPORTED_SCHEMA_VERSIONS)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc, event_type)) from exc
    except Exception as exc:  # a validator tripped over a value no rule foresaw
        raise InvalidEvent(f"{event_type}: {type(exc).__name__}: {exc}") from exc


def _shown(value: Any) -> str:
    """A value for an error message, cut short: the message goes into a header and a log."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
