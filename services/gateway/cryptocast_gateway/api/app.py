"""The FastAPI application; state is passed in, nothing connects here."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from cryptocast_gateway.api.deps import GatewayState
from cryptocast_gateway.api.errors import install_error_handlers
from cryptocast_gateway.api.routes import legacy, v1


def create_app(state: GatewayState) -> FastAPI:
    app = FastAPI(title="CryptoCast", version="1", description=(
        "Short-horizon crypto price predictions. The original CryptoCast endpoints are kept "
        "byte-compatible; new clients should use /api/v1."))
    app.state.gateway = state

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(v1.router)
    app.include_router(legacy.router)  # last: its /{coin} route matches any single segment
    install_error_handlers(app)
    app.add_middleware(CORSMiddleware, allow_origins=state.settings.cors_origins,
                       allow_methods=["*"], allow_headers=["*"])
    return app
