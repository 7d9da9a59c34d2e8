"""Errors as JSON everywhere, inside the CORS middleware so that they carry its headers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptocast_gateway.api.deps import ApiError
from cryptocast_gateway.api.middleware import UNLIMITED_PATHS

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Every error of the API, except the original's "nothing yet" answers."""

    status: str = Field(examples=["error"])
    message: str


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def complete_openapi(app: FastAPI, schemas: dict[str, Any]) -> None:
    """The OpenAPI document says what the API answers: 400 where FastAPI would document its
    422 (invalid requests get the original's 400 here), 413 wherever a body is read and 429
    on every rate-limited operation; ``schemas`` are added to its components (those that
    depend on the settings)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    responses = operation["responses"]
                    if responses.pop("422", None) is not None:
                        responses.setdefault("400", error_response("invalid parameter or body"))
                    if "requestBody" in operation:
                        responses["413"] = error_response("body larger than the limit")
                    if path not in UNLIMITED_PATHS:
                        responses["429"] = error_response("rate limit exceeded; see Retry-After")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            components["ErrorBody"] = ErrorBody.model_json_schema()
            components.update(schemas)
        return app.openapi_schema  # type: ignore[return-value]  # set just above, never None

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI documents replacing it


def describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


class CatchUnhandled:
    """Turn an unhandled exception into a JSON 500 without leaking its details."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if started:
                raise
            response = JSONResponse({"status": "error", "message": "internal error"}, 500)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"status": "error", "message": exc.detail}, exc.status_code, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = describe_validation(exc)
        log.info("rejected invalid request", extra={"reason": message})
        return JSONResponse({"status": "error", "message": message}, 400)

    app.add_middleware(CatchUnhandled)
