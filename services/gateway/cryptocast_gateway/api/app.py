"""The FastAPI application; state is passed in, nothing connects here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cryptocast_common.asyncapi import asyncapi_document
from cryptocast_common.health import readiness
from cryptocast_gateway.accuracy import recent_accuracy
from cryptocast_gateway.api.errors import complete_openapi, install_error_handlers
from cryptocast_gateway.api.middleware import (
    AllowedMethods,
    BodyLimit,
    DirectRoutes,
    Observe,
    RateLimit,
)
from cryptocast_gateway.api.routes import alerts, coins, dashboard, legacy, models, skill, v1
from cryptocast_gateway.observability import AccuracyValues, GaugeValues
from cryptocast_gateway.state import GatewayState, check_ready


def fixed_paths(app: FastAPI) -> set[str]:
    """The paths without parameters ``app`` serves, its documentation's included."""
    documentation = (
        app.openapi_url,
        app.docs_url,
        app.redoc_url,
        app.swagger_ui_oauth2_redirect_url,
    )
    return {path for path in [*app.openapi()["paths"], *documentation] if path and "{" not in path}


def create_app(state: GatewayState) -> FastAPI:
    app = FastAPI(
        title="CryptoCast",
        version="1",
        description=(
            "Short-horizon crypto price predictions. The original CryptoCast endpoints are kept "
            "byte-compatible; new clients should use /api/v1."
        ),
    )
    app.state.gateway = state

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """RabbitMQ and MongoDB are reachable; 503 with the reason if not."""
        status, body = await readiness(lambda: check_ready(state))
        return JSONResponse(body, status_code=status)

    events_document = asyncapi_document(state.common)

    @app.get("/asyncapi.json", tags=["operations"])
    async def asyncapi() -> dict[str, Any]:
        """The AsyncAPI 3 document of the event exchange, for services that subscribe."""
        return events_document

    async def accuracy_now() -> AccuracyValues:
        return await recent_accuracy(state.store, state.common.symbols, state.common.interval)

    async def gates_now() -> GaugeValues:
        values: GaugeValues = {}
        for symbol in state.common.symbols:
            lineup = await models.lifecycle_of(state, symbol)
            if lineup is not None:
                values[(symbol, lineup.champion)] = float(lineup.gate == "open")
        return values

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this replica."""
        await state.metrics.accuracy.refresh(accuracy_now)
        await state.metrics.gates.refresh(gates_now)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(v1.router)
    app.include_router(coins.router)
    app.include_router(models.router)
    app.include_router(alerts.router)
    app.include_router(skill.router)
    dashboard.mount(app)
    app.include_router(legacy.router)  # last: its /{coin} route matches any single segment
    complete_openapi(app, alerts.body_schemas(state.coins))
    app.add_middleware(AllowedMethods, paths=app.openapi()["paths"])
    app.add_middleware(
        DirectRoutes,
        routes=[legacy.latest_route, v1.latest_route],
        fixed_paths=fixed_paths(app) | {dashboard.PATH},
        state=state,
    )
    install_error_handlers(app)
    # Added innermost first: Observe sees every answer, CORS decorates the limits' answers.
    settings = state.settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_middleware(Observe, metrics=state.metrics, access_log=settings.access_log)
    if settings.trusted_proxies:  # outermost: limits, stream caps and logs see the client
        app.add_middleware(
            ProxyHeadersMiddleware, trusted_hosts=[str(proxy) for proxy in settings.trusted_proxies]
        )
    return app
