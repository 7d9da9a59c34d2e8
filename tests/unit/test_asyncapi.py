"""The AsyncAPI document: generated from the models, kept in docs/, internally consistent."""

import json
from pathlib import Path
from typing import Any

from cryptocast_common.asyncapi import asyncapi_document
from cryptocast_common.events import EVENT_TYPES
from cryptocast_common.settings import CommonSettings

DOCUMENT = Path(__file__).parents[2] / "docs/asyncapi.json"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_docs_copy_is_what_the_models_generate() -> None:
    generated = asyncapi_document(CommonSettings(namespace="cryptocast"))
    assert json.loads(DOCUMENT.read_text()) == generated, (
        "regenerate: .venv/bin/python -m cryptocast_common.asyncapi > docs/asyncapi.json"
    )


def test_every_event_type_has_a_channel_and_every_reference_resolves() -> None:
    document = asyncapi_document(CommonSettings(namespace="cryptocast"))
    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == set(EVENT_TYPES)
    for channel in document["channels"].values():
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "cryptocast.events"
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref
    prediction = document["components"]["schemas"]["Prediction"]
    assert {"event_id", "symbol", "target_time", "predicted_close", "model"} <= set(
        prediction["properties"]
    )
