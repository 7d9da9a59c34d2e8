"""Arbitrary message bodies, content types and headers through each service's real consume
loop (the bus's ``BatchConsumer`` with the handlers its ``bootstrap`` wires): nothing
escapes, every message is settled exactly once, and the valid neighbours in the same batch
are handled."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptocast_common.amqp import _AmqpDelivery
from cryptocast_common.bus import BatchConsumer, Delivery, Handler, InMemoryBus
from cryptocast_common.events import Candle, Event
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import bootstrap as gateway
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import InMemoryEventStore
from cryptocast_inference.bootstrap import bootstrap as inference
from cryptocast_inference.predictors import NaivePredictor
from cryptocast_inference.settings import InferenceSettings
from cryptocast_verifier.bootstrap import bootstrap as verifier
from cryptocast_verifier.store import InMemoryVerifierStore
from tests.factories import candle, prediction

BATCH = 8


class CapturingBus(InMemoryBus):
    """Records the handler each service registers, to drive it through a consumer here."""

    def __init__(self) -> None:
        super().__init__()
        self.handlers: dict[str, Handler] = {}

    async def consume(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: Handler,
        *,
        batch_size: int = 1,
        exclusive: bool = False,
        single_active: bool = False,
    ) -> None:
        self.handlers[queue] = handler


class NoHistory:
    async def before(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        return []


@dataclass(eq=False)  # compared by identity: it holds the list it is in
class RecordedDelivery:
    body: bytes
    content_type: str | None
    channel: list[RecordedDelivery]  # every delivery on it, in delivery order
    message_id: str | None = None
    retried: int = 0
    returned: int = 0
    stale: bool = False
    outcomes: list[str] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first outcome

    def _settle(self, outcome: str) -> None:
        self.outcomes.append(outcome)
        self.settled.set()

    async def ack(self, *, with_earlier: bool = False) -> None:
        """As AMQP's multiple ack: the earlier ones not settled yet are acked too."""
        for delivery in self.channel if with_earlier else []:
            if delivery is self:
                break
            if not delivery.settled.is_set():
                delivery._settle("ack")
        self._settle("ack")

    async def retry(self, deliveries: int) -> None:
        self._settle("retry")

    async def isolate(self, deliveries: int) -> None:
        self._settle("isolate")

    async def dead_letter(self, reason: str) -> None:
        assert reason
        self._settle("dead")


async def service_handlers() -> dict[str, Handler]:
    common = CommonSettings()
    bus = CapturingBus()
    services = [
        await verifier(common, bus=bus, store=InMemoryVerifierStore()),
        await inference(
            common, InferenceSettings(), bus=bus, predictor=NaivePredictor(), history=NoHistory()
        ),
        await gateway(
            common, GatewaySettings(), bus=bus, store=InMemoryEventStore(), serve_http=False
        ),
    ]
    for service in services:
        await service.start()
    return bus.handlers


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
VALID = json.loads(candle(0).to_json())


def with_field(name: str, value: Any) -> bytes:
    return json.dumps({**VALID, name: value}).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(with_field, st.sampled_from(sorted(VALID)), json_values),
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 6000).map(lambda n: with_field("open", 0).replace(b"0,", b"1" * n + b",")),
    st.sampled_from(
        [
            b"",
            b"NaN",
            b'{"type": "candle", "schema_version": []}',
            with_field("volume", float("nan")),
            with_field("open", float("inf")),
            with_field("interval", "99999999999999999999w"),
        ]
    ),
)
content_types = st.sampled_from([None, "", "application/json", "text/plain", "\x00"])


@pytest.mark.parametrize(
    "queue", ["cryptocast.verifier", "cryptocast.inference", "cryptocast.gateway"]
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=st.lists(st.tuples(bodies, content_types), min_size=1, max_size=BATCH - 2))
def test_any_message_is_settled_once_and_neighbours_are_handled(
    queue: str, messages: list[tuple[bytes, str | None]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    neighbours = (
        [candle(0), prediction(0)] if queue.endswith("verifier") else [candle(0), candle(1)]
    )
    outcome = asyncio.run(_consume(queue, messages, neighbours))
    arbitrary, valid = outcome[:-2], outcome[-2:]
    assert all(len(d.outcomes) == 1 for d in arbitrary), [d.outcomes for d in arbitrary]
    assert [d.outcomes for d in valid] == [["ack"], ["ack"]]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _consume(
    queue: str, messages: list[tuple[bytes, str | None]], neighbours: list[Event]
) -> list[RecordedDelivery]:
    handlers = await service_handlers()
    deliveries: list[RecordedDelivery] = []
    deliveries += [RecordedDelivery(body, kind, deliveries) for body, kind in messages]
    deliveries += [
        RecordedDelivery(event.to_json(), "application/json", deliveries) for event in neighbours
    ]
    inbox: asyncio.Queue[Delivery] = asyncio.Queue()
    for delivery in deliveries:
        inbox.put_nowait(delivery)
    published: list[Event] = []

    async def publish(events: Sequence[Event]) -> None:
        published.extend(events)

    consumer = BatchConsumer(
        queue, inbox, handlers[queue], publish, batch_size=BATCH, max_attempts=3
    )
    consumer.start()
    async with asyncio.timeout(10):  # in this process: awaited, not polled
        await asyncio.gather(*(d.settled.wait() for d in deliveries))
    assert consumer.running
    await consumer.stop()
    return deliveries


header_values = st.one_of(json_values, st.binary(max_size=10), st.lists(st.integers()))


@given(
    headers=st.none()
    | st.dictionaries(
        st.sampled_from(["x-delivery-count", "x-cryptocast-deliveries", "x-death", "other"]),
        header_values,
    )
)
def test_headers_of_any_type_count_as_deliveries_or_nothing(headers: dict[str, Any] | None) -> None:
    message = SimpleNamespace(body=b"{}", message_id=None, content_type=None, headers=headers)
    delivery = _AmqpDelivery(None, "q", message)  # type: ignore[arg-type]  # a stand-in message
    assert isinstance(delivery.retried, int) and delivery.retried >= 0
    assert isinstance(delivery.returned, int) and delivery.returned >= 0
