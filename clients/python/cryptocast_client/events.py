"""RabbitMQ events, driven by the AsyncAPI document (``docs/asyncapi.json``, or a gateway's
``/asyncapi.json``): pick channels, bind a queue to their routing keys on the document's
exchange, and receive each message parsed (and validated against its payload schema)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import jsonschema  # type: ignore[import-untyped]
from pydantic import BaseModel

from cryptocast_client import models

Document = Mapping[str, Any]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channel:
    name: str
    address: str  # e.g. "prediction.{symbol}.{interval}"
    exchange: str
    exchange_type: str
    payload_schema: str  # the components/schemas name of its message's payload

    def routing_key(self, **parameters: str) -> str:
        """The address with its parameters filled in; an unnamed one matches any value
        (``*``): ``routing_key(symbol="BTC")`` -> ``prediction.BTC.*``."""
        key = self.address
        for name in _parameters(self.address):
            key = key.replace("{" + name + "}", parameters.get(name, "*"))
        return key


def _parameters(address: str) -> list[str]:
    return [part[1:-1] for part in address.split(".") if part.startswith("{")]


def channels(document: Document) -> dict[str, Channel]:
    """The document's AMQP channels by name."""
    found = {}
    for name, channel in document["channels"].items():
        exchange = channel["bindings"]["amqp"]["exchange"]
        (message,) = channel["messages"].values()
        if "$ref" in message:
            message = _resolve(document, message["$ref"])
        payload_ref = message["payload"]["$ref"]
        found[name] = Channel(
            name=name,
            address=channel["address"],
            exchange=exchange["name"],
            exchange_type=exchange.get("type", "topic"),
            payload_schema=payload_ref.rsplit("/", 1)[-1],
        )
    return found


def _resolve(document: Document, ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


@dataclass(frozen=True)
class ReceivedEvent:
    channel: str
    routing_key: str
    payload: dict[str, Any]
    event: BaseModel | None  # the generated model of the payload's schema, where there is one

    @property
    def event_id(self) -> str:
        return str(self.payload.get("event_id", ""))


class EventParser:
    """Validates a payload against its channel's schema in the AsyncAPI document and parses
    it into the generated model of the same name (Prediction, Verification, Candle,
    ModelChange); a payload that fails raises ``jsonschema.ValidationError``."""

    def __init__(self, document: Document, validate: bool = True) -> None:
        self.channels = channels(document)
        self._by_type = {c.payload_schema: c for c in self.channels.values()}
        self._validators = {
            name: jsonschema.Draft202012Validator(
                {
                    "$ref": f"#/components/schemas/{c.payload_schema}",
                    "components": document["components"],
                }
            )
            for name, c in self.channels.items()
        }
        self.validate = validate

    def channel_of(self, routing_key: str) -> Channel:
        name = routing_key.split(".", 1)[0]
        if name not in self.channels:
            raise KeyError(f"no channel in the AsyncAPI document for {routing_key!r}")
        return self.channels[name]

    def parse(self, routing_key: str, body: bytes) -> ReceivedEvent:
        channel = self.channel_of(routing_key)
        payload = json.loads(body)
        if self.validate:
            self._validators[channel.name].validate(payload)
        model = getattr(models, channel.payload_schema, None)
        event = None
        if isinstance(model, type) and issubclass(model, BaseModel):
            event = model.model_validate(payload)
        return ReceivedEvent(channel.name, routing_key, payload, event)


async def subscribe(
    amqp_url: str,
    document: Document,
    channel_names: Iterable[str],
    *,
    queue: str | None = None,
    prefetch: int = 64,
    validate: bool = True,
    **parameters: str,
) -> AsyncIterator[ReceivedEvent]:
    """Bind a queue to the routing keys of ``channel_names`` (parameters such as
    ``symbol="BTC"``, ``interval="4h"`` narrow them; ``*`` otherwise) and yield each event;
    a message is acknowledged when the consumer asks for the next one, so an exception in
    the loop leaves it for redelivery; one that does not match its schema is rejected
    (dead-lettered if the queue has a dead-letter exchange) and skipped. ``queue`` names a
    durable queue to share between replicas; without it an exclusive, auto-deleted one is
    used (events published while nobody listens are lost)."""
    parser = EventParser(document, validate)
    chosen = [parser.channels[name] for name in channel_names]
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        bound = await channel.declare_queue(
            queue or "", durable=queue is not None, exclusive=queue is None
        )
        for wanted in chosen:
            if wanted.exchange not in exchanges:
                exchanges[wanted.exchange] = await channel.declare_exchange(
                    wanted.exchange, wanted.exchange_type, durable=True
                )
            await bound.bind(exchanges[wanted.exchange], wanted.routing_key(**parameters))
        async with bound.iterator() as messages:
            async for message in messages:
                try:
                    event = parser.parse(message.routing_key or "", message.body)
                except (ValueError, KeyError, jsonschema.ValidationError) as error:
                    log.warning("dropped an invalid event", extra={"reason": str(error)[:300]})
                    await message.reject(requeue=False)
                    continue
                yield event
                await message.ack()
    finally:
        await connection.close()
