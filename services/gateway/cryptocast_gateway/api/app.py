"""The FastAPI application; state is passed in, nothing connects here."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from cryptocast_common.health import readiness
from cryptocast_gateway.api.deps import GatewayState, check_ready
from cryptocast_gateway.api.errors import install_error_handlers
from cryptocast_gateway.api.routes import legacy, v1


def create_app(state: GatewayState) -> FastAPI:
    app = FastAPI(title="CryptoCast", version="1", description=(
        "Short-horizon crypto price predictions. The original CryptoCast endpoints are kept "
        "byte-compatible; new clients should use /api/v1."))
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

    app.include_router(v1.router)
    app.include_router(legacy.router)  # last: its /{coin} route matches any single segment
    install_error_handlers(app)
    app.add_middleware(CORSMiddleware, allow_origins=state.settings.cors_origins,
                       allow_methods=["*"], allow_headers=["*"])
    return app
