"""The Python client's types against the gateway's OpenAPI document.

``cryptocast_client/models.py`` is generated from ``clients/openapi.json`` (the snapshot
both clients are generated from); these tests fail when the generated file is stale, and
when the live gateway's /openapi.json no longer offers an operation, parameter, schema or
field the client relies on (or changes a field's type, or requires something new of it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptocast_client import OPERATIONS, models
from cryptocast_client.codegen import (
    MODELS_FILE,
    SNAPSHOT,
    incompatibilities,
    model_specs,
    render,
    used_models,
)

from tests.clients.conftest import LiveGateway

Document = dict[str, Any]


@pytest.fixture(scope="module")
def snapshot() -> Document:
    document: Document = json.loads(SNAPSHOT.read_text())
    return document


async def live_openapi(base_url: str) -> Document:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/openapi.json")
    response.raise_for_status()
    document: Document = response.json()
    return document


def test_generated_models_are_those_of_the_snapshot(snapshot: Document) -> None:
    assert MODELS_FILE.read_text() == render(snapshot), (
        "clients/python/cryptocast_client/models.py is stale or edited by hand: "
        "run .venv/bin/python -m cryptocast_client.codegen"
    )


async def test_live_gateway_offers_everything_the_client_uses(
    live: LiveGateway, snapshot: Document
) -> None:
    document = await live_openapi(live.base_url)
    problems = incompatibilities(snapshot, document, OPERATIONS)
    assert not problems, (
        "the gateway's /openapi.json changed incompatibly with the clients; fix the gateway or "
        "regenerate (python -m cryptocast_client.codegen --url <gateway>, then npm run "
        "generate in clients/typescript):\n" + "\n".join(problems)
    )
    # The classes themselves, field by field, against the live schema's properties.
    live_specs = model_specs(document)
    roots = [name for op in OPERATIONS for name in (op.response, op.body) if name]
    for name in sorted(used_models(snapshot, roots)):
        cls = getattr(models, name)
        fields = {info.alias or attr: info for attr, info in cls.model_fields.items()}
        assert set(fields) <= set(live_specs[name]), (
            f"{name}: {set(fields) - set(live_specs[name])}"
        )
        for prop, info in fields.items():
            assert live_specs[name][prop].required or not info.is_required(), f"{name}.{prop}"


def test_every_operation_the_client_declares_is_called(snapshot: Document) -> None:
    source = (MODELS_FILE.parent / "client.py").read_text()
    for op in OPERATIONS:
        prefix = op.path.split("{", 1)[0].rstrip("/")
        assert f'"{prefix}' in source or f'f"{prefix}' in source, op.path
        assert op.path in snapshot["paths"], op.path


def _drop_field(d: Document) -> None:
    del d["components"]["schemas"]["Prediction"]["properties"]["predicted_close"]


def _retype_field(d: Document) -> None:
    d["components"]["schemas"]["Verification"]["properties"]["error_pct"] = {"type": "string"}


def _optional_field(d: Document) -> None:
    d["components"]["schemas"]["Symbols"]["required"].remove("symbols")


def _drop_param(d: Document) -> None:
    op = d["paths"]["/api/v1/predictions/{symbol}"]["get"]
    op["parameters"] = [p for p in op["parameters"] if p["name"] != "cursor"]


def _required_param(d: Document) -> None:
    d["paths"]["/api/v1/accuracy/{symbol}"]["get"]["parameters"].append(
        {"name": "model", "in": "query", "required": True, "schema": {"type": "string"}}
    )


def _move_path(d: Document) -> None:
    d["paths"]["/api/v2/symbols"] = d["paths"].pop("/api/v1/symbols")


def _other_response(d: Document) -> None:
    answer = d["paths"]["/api/v1/model/{symbol}"]["get"]["responses"]["200"]
    answer["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/Candle"}


def _required_body_field(d: Document) -> None:
    schema = d["components"]["schemas"]["OperatorRequest"]
    schema["properties"]["ticket"] = {"type": "string"}
    schema["required"].append("ticket")


def _drop_model(d: Document) -> None:
    del d["components"]["schemas"]["ModelRef"]


def _nested_retype(d: Document) -> None:
    skill = d["components"]["schemas"]["ModelSkill"]["properties"]
    skill["beats_naive"] = {"type": "integer"}


CHANGES: dict[str, tuple[Callable[[Document], None], str]] = {
    "field removed": (_drop_field, "model Prediction: field 'predicted_close' removed"),
    "field retyped": (_retype_field, "model Verification: field 'error_pct' is str, was float"),
    "field optional": (_optional_field, "model Symbols: field 'symbols' no longer required"),
    "parameter removed": (_drop_param, "query parameter 'cursor' missing"),
    "required parameter": (_required_param, "required query parameter 'model' not sent"),
    "path moved": (_move_path, "GET /api/v1/symbols: operation missing"),
    "response schema": (_other_response, "not ServingModel"),
    "required body field": (_required_body_field, "new required field 'ticket' not sent"),
    "model removed": (_drop_model, "model ModelRef: missing"),
    "nested model": (_nested_retype, "model ModelSkill: field 'beats_naive' is int, was bool"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_the_check_fails_on_incompatible_changes(snapshot: Document, change: str) -> None:
    mutate, expected = CHANGES[change]
    changed = copy.deepcopy(snapshot)
    mutate(changed)
    problems = incompatibilities(snapshot, changed, OPERATIONS)
    assert any(expected in p for p in problems), problems


def test_compatible_additions_pass(snapshot: Document) -> None:
    changed = copy.deepcopy(snapshot)
    changed["components"]["schemas"]["Prediction"]["properties"]["new_field"] = {"type": "number"}
    changed["paths"]["/api/v1/predictions/{symbol}"]["get"]["parameters"].append(
        {"name": "model", "in": "query", "required": False, "schema": {"type": "string"}}
    )
    assert incompatibilities(snapshot, changed, OPERATIONS) == []
