import json

import pytest
from pydantic import ValidationError

from cryptocast_common.events import (
    Candle,
    InvalidEvent,
    ModelChange,
    ModelRef,
    Prediction,
    decode_event,
)
from tests.factories import T0, candle, prediction


def test_ids_are_deterministic_and_routing_keys_follow_the_design() -> None:
    assert candle(0).event_id == "candle:BTC:4h:2026-08-01T00:00:00Z"
    assert candle(0).event_id == candle(0).event_id
    assert candle(0).routing_key == "candle.BTC.4h"
    p = prediction(0)
    assert p.event_id == "prediction:naive@1:BTC:4h:2026-08-01T08:00:00Z"
    assert p.routing_key == "prediction.BTC.4h"
    assert p.occurred_at == p.based_on.close_time


def test_round_trip_through_json_keeps_the_event() -> None:
    for event in (candle(3, close=1.2345), prediction(2)):
        assert decode_event(event.to_json()) == event


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        candle(0).close = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"high": 50.0}, "high/low do not bracket"),
        ({"close": -1.0}, "greater than 0"),
        ({"close_time": T0}, "must equal the interval"),
        ({"interval": "4x"}, "not of the form"),
    ],
)
def test_candle_rejects_inconsistent_values(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        candle(0, **change)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        candle(0, open_time=T0.replace(tzinfo=None))


def test_a_supplied_id_must_match_the_payload() -> None:
    data = json.loads(candle(0).to_json())
    data["event_id"] = "candle:BTC:4h:1999-01-01T00:00:00Z"
    with pytest.raises(InvalidEvent, match="does not match"):
        decode_event(json.dumps(data).encode())


def test_prediction_target_must_follow_its_horizon() -> None:
    p = prediction(0)
    with pytest.raises(ValidationError, match="target_time"):
        Prediction(
            **{
                **p.model_dump(),
                "event_id": "",
                "target_time": p.target_time + (p.target_time - p.based_on.close_time),
            }
        )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "trade"}', "unknown event type 'trade'"),
        (
            json.dumps({**json.loads(candle(0).to_json()), "schema_version": 7}).encode(),
            "unsupported version 7",
        ),
        (
            json.dumps({**json.loads(candle(0).to_json()), "volume": "lots"}).encode(),
            "candle.volume: Input should be a valid number",
        ),
    ],
)
def test_decode_names_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_event(body)


def test_decoded_type_is_the_right_class() -> None:
    assert isinstance(decode_event(candle(0).to_json()), Candle)


def test_a_change_stamped_by_a_clock_keeps_its_id_once_stored_to_the_millisecond() -> None:
    stamped = T0.replace(microsecond=123_456)
    change = ModelChange(
        symbol="BTC",
        interval="4h",
        kind="registered",
        model=ModelRef(name="dist-4h", version="2"),
        by="trainer",
        reason="retrained",
        decided_at=stamped,
    )
    stored = stamped.replace(microsecond=123_000)  # what MongoDB gives back
    assert change.decided_at == stored
    read_back = change.model_dump() | {"decided_at": stored}
    read_back.pop("event_id")
    assert ModelChange.model_validate(read_back).event_id == change.event_id
    assert change.event_id.endswith("2026-08-01T00:00:00.123000Z")
