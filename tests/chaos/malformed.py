"""Malformed messages of every kind, on routing keys the services consume.

Each message carries a ``message_id`` of ``malformed-<kind>-<n>`` so its dead-letter copies
can be matched to it. A body that the event models would accept is never used: every
variant is checked against ``decode_event`` here (except the content-type kind, whose body
is a valid candle of a symbol outside the replay: only its content type is wrong)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika

from cryptocast_common.bus import topic_matches
from cryptocast_common.events import Candle, InvalidEvent, decode_event

ROUTING_KEYS = (
    "candle.BTC.4h",
    "candle.ETH.4h",
    "candle.SOL.4h",
    "prediction.BTC.4h",
    "prediction.SOL.4h",
    "verification.ETH.4h",
    "model.BTC.4h",
)
SCHEMA_VERSION_LIST = b'{"type": "candle", "schema_version": [], "symbol": "BTC" }'
assert len(SCHEMA_VERSION_LIST) == 58
NESTED = b"[" * 100_000 + b"]" * 100_000  # 200 KB


@dataclass(frozen=True)
class Malformed:
    kind: str
    body: bytes
    content_type: str | None = "application/json"
    headers: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The kind, and for headers and content types which ones."""
        if self.headers:
            return f"{self.kind} {self.headers}"
        if self.content_type != "application/json":
            return f"{self.kind} ({self.content_type})"
        return self.kind


def _invalid(body: bytes) -> bool:
    try:
        decode_event(body)
    except InvalidEvent:
        return True
    return False


def _wrong_types(template: dict[str, Any]) -> Iterator[bytes]:
    """Every field of the candle, in turn, with values of types it cannot take."""
    wrong: list[Any] = [[], {}, [1, 2], {"a": 1}, None, True, "not a value", -1, 0.5]
    for name in template:
        for value in wrong:
            body = json.dumps({**template, name: value}).encode()
            if _invalid(body):
                yield body


def variants(candle: Candle) -> list[Malformed]:
    template = json.loads(candle.to_json())
    foreign = json.loads(candle.to_json())
    foreign.update(symbol="ZZCT", event_id="")  # valid, outside the replay
    foreign_body = json.dumps(foreign).encode()
    assert not _invalid(foreign_body)
    missing_fields = json.dumps({"type": "candle", "schema_version": 1}).encode()
    out = [
        Malformed("non-JSON", b"this is not json {"),
        Malformed("non-JSON", b"<xml>candle</xml>"),
        Malformed("non-UTF-8", b"\xff\xfe\xfa\x00garbage\x80"),
        Malformed("non-UTF-8", b'{"type": "candle", "symbol": "\xc3\x28"}'),
        Malformed("empty body", b""),
        *(
            Malformed("JSON of another type", body)
            for body in (
                b"null",
                b"true",
                b"false",
                b"0",
                b"-1.5e3",
                b'"candle"',
                b"[]",
                b"[1, 2, 3]",
                b"{}",
                b'[{"type": "candle"}]',
            )
        ),
        *(Malformed("candle field of a wrong type", body) for body in _wrong_types(template)),
        Malformed("schema_version a list (58 bytes)", SCHEMA_VERSION_LIST),
        Malformed("200 KB nested array", NESTED),
        *(
            Malformed(
                "huge number",
                json.dumps({**template, name: value}).encode().replace(b'"HUGE"', huge),
            )
            for name, value, huge in (
                ("close", "HUGE", b"1e400"),
                ("volume", "HUGE", b"1" * 400),
                ("schema_version", "HUGE", b"1" * 40),
                ("open", "HUGE", b"-1e400"),
            )
        ),
        *(
            Malformed(
                "NaN/Infinity",
                json.dumps({**template, "close": "X"}).encode().replace(b'"X"', constant),
            )
            for constant in (b"NaN", b"Infinity", b"-Infinity")
        ),
        *(
            Malformed("wrong content type, valid candle body", foreign_body, content_type)
            for content_type in ("text/plain", "application/xml", "application/octet-stream")
        ),
        Malformed("missing content type", missing_fields, None),
        Malformed("missing content type", b"not json", None),
        *(
            Malformed("headers of wrong types", missing_fields, headers=headers)
            for headers in (
                {"x-delivery-count": "five"},
                {"x-delivery-count": -1},
                {"x-delivery-count": 2**62},
                {"x-delivery-count": [1, 2]},
                {"x-death": "not a list"},
                {"x-cryptocast-deliveries": "3"},
                {"x-cryptocast-deliveries": {"n": 1}},
                {"x-cryptocast-reason": 42},
                {"x-cryptocast-queue": ["a"]},
                {"x-first-death-reason": 7},
                {"x-delivery-count": 1.5},
            )
        ),
    ]
    for item in out:
        if not item.kind.startswith("wrong content type"):
            assert _invalid(item.body), item
    return out


@dataclass(frozen=True)
class Sent:
    message_id: str
    kind: str
    routing_key: str


async def publish_malformed(
    url: str, exchange_name: str, candle: Candle, total: int = 10_000
) -> list[Sent]:
    """``total`` messages cycling through every variant on every routing key, published
    with confirms, 256 in flight."""
    combinations = itertools.cycle(itertools.product(variants(candle), ROUTING_KEYS))
    plan = [(f"malformed-{n}", *next(combinations)) for n in range(total)]
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name)
        for start in range(0, len(plan), 256):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            item.body,
                            content_type=item.content_type,
                            message_id=message_id,
                            headers=item.headers,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=key,
                    )
                    for message_id, item, key in plan[start : start + 256]
                )
            )
    return [Sent(message_id, item.label, key) for message_id, item, key in plan]


def receivers(routing_key: str, bindings: dict[str, list[str]]) -> set[str]:
    """Queues a message with ``routing_key`` reaches, from queue -> binding keys."""
    return {
        queue
        for queue, keys in bindings.items()
        if any(topic_matches(key, routing_key) for key in keys)
    }
