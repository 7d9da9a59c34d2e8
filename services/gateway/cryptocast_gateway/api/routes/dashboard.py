"""The dashboard's static files (``cryptocast_gateway/dashboard``) at ``/dashboard/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

PATH = "/dashboard"
FILES = Path(__file__).parents[2] / "dashboard"


def mount(app: FastAPI) -> None:
    """Before the original API's ``/{coin}``, which would take ``/dashboard`` for a coin."""

    @app.get(PATH, include_in_schema=False)
    async def dashboard() -> RedirectResponse:
        return RedirectResponse("dashboard/")  # relative: right behind a path prefix too

    app.mount(PATH, StaticFiles(directory=FILES, html=True), name="dashboard")
