"""The AsyncAPI 3 description of the event exchange, generated from the event models.

    python -m cryptocast_common.asyncapi > docs/asyncapi.json

The gateway serves the same document at ``/asyncapi.json``; a test keeps docs/ in step.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cryptocast_common.events import (
    Candle,
    CoinAdded,
    ModelCard,
    ModelChange,
    Prediction,
    Verification,
)
from cryptocast_common.settings import CommonSettings

CHANNELS: dict[str, tuple[type[BaseModel], str, str]] = {
    # name: (event model, who publishes it, what it means)
    "candle": (Candle, "the ingestor", "A closed OHLCV candle."),
    "prediction": (
        Prediction,
        "inference",
        "A forecast of the close of a candle 1 .. H candles ahead (horizon).",
    ),
    "verification": (
        Verification,
        "the verifier",
        "The verdict on a prediction once its target candle has closed.",
    ),
    "model": (
        ModelCard,
        "inference, when it starts",
        "The model serving a symbol and interval, with its held-out evaluation.",
    ),
    "model_change": (
        ModelChange,
        "the verifier's lifecycle policy (operators' requests come from the gateway)",
        "A promotion, demotion, gate switch, pin or block of a model on a symbol, with the "
        "live evidence it rests on.",
    ),
    "coin_added": (
        CoinAdded,
        "the gateway, when an operator adds a coin",
        "A coin added at run time, at one interval: backfilled and followed by the ingestor, "
        "served no change until its own record opens the gate.",
    ),
}


def asyncapi_document(settings: CommonSettings | None = None) -> dict[str, Any]:
    settings = settings or CommonSettings()
    _, schemas = models_json_schema(
        [(model, "serialization") for model, _, _ in CHANNELS.values()],
        ref_template="#/components/schemas/{model}",
    )
    exchange = {
        "name": settings.exchange,
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    channels, operations, messages = {}, {}, {}
    for name, (model, publisher, meaning) in CHANNELS.items():
        channels[name] = {
            "address": f"{name}.{{symbol}}.{{interval}}",
            "description": f"{meaning} Published by {publisher}.",
            "parameters": {
                "symbol": {"description": "Coin symbol, upper case, e.g. BTC"},
                "interval": {"description": "Candle interval, e.g. 4h"},
            },
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": "0.3.0"}
            },
        }
        operations[f"receive_{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Subscribe to {name} events",
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
        }
        messages[name] = {
            "name": name,
            "title": model.__name__,
            "summary": meaning,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "correlationId": {
                "description": "Deterministic event id, also the AMQP "
                "message_id: use it to deduplicate",
                "location": "$message.payload#/event_id",
            },
            "bindings": {
                "amqp": {"messageType": name, "contentEncoding": "utf-8", "bindingVersion": "0.3.0"}
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "CryptoCast events",
            "version": "1",
            "description": (
                "Every event is a JSON object with event_id, type, schema_version, symbol, "
                "interval and occurred_at, published persistently with publisher confirms on "
                f"the topic exchange {settings.exchange!r}. Delivery is at least once: the "
                "same event (same event_id) can arrive twice. Bind your own durable queue "
                "with the routing keys you want; see docs/subscribing.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The broker of the deployment",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas["$defs"]},
    }


def main() -> None:
    print(json.dumps(asyncapi_document(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
