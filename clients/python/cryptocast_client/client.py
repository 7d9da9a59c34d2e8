"""The versioned REST API of the CryptoCast gateway, typed with the generated models."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from cryptocast_client.codegen import Operation
from cryptocast_client.models import (
    Accepted,
    Accuracy,
    ModelHistory,
    OperatorRequest,
    Prediction,
    PredictionPage,
    ServingModel,
    Symbols,
    Verification,
    VerificationPage,
)

M = TypeVar("M", bound=BaseModel)
Window = Literal["24h", "7d", "30d", "all"]
Action = Literal["pin", "unpin", "block", "unblock"]
PAGE = frozenset({("symbol", "path"), ("start", "query"), ("end", "query")}) | frozenset(
    {("cursor", "query"), ("limit", "query")}
)

# Every operation this client calls, with the parameters it may send and the schemas it
# reads or sends: tests/clients checks each against a live gateway's /openapi.json.
OPERATIONS = (
    Operation("get", "/api/v1/symbols", response="Symbols"),
    Operation(
        "get", "/api/v1/predictions/{symbol}/latest", frozenset({("symbol", "path")}), "Prediction"
    ),
    Operation("get", "/api/v1/predictions/{symbol}", PAGE, response="PredictionPage"),
    Operation("get", "/api/v1/verifications/{symbol}", PAGE, response="VerificationPage"),
    Operation(
        "get",
        "/api/v1/accuracy/{symbol}",
        frozenset({("symbol", "path"), ("window", "query")}),
        response="Accuracy",
    ),
    Operation("get", "/api/v1/model/{symbol}", frozenset({("symbol", "path")}), "ServingModel"),
    Operation(
        "get",
        "/api/v1/models/history",
        frozenset({("symbol", "query"), ("limit", "query")}),
        response="ModelHistory",
    ),
    Operation(
        "post",
        "/api/v1/models/{symbol}/{action}",
        frozenset({("symbol", "path"), ("action", "path"), ("X-API-Key", "header")}),
        response="Accepted",
        body="OperatorRequest",
        status="202",
    ),
)


class CryptoCastError(Exception):
    """A non-2xx answer: its status and the gateway's ``message`` (errors are
    ``{"status": "error", "message": ...}``)."""

    def __init__(self, status_code: int, message: str, body: Any = None) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.body = body


def _time(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware (the API takes RFC 3339)")
    return value.isoformat()


class CryptoCastClient:
    """``async with CryptoCastClient("http://localhost:8000") as api: await api.symbols()``.

    ``api_key`` is sent as ``X-API-Key`` on operator requests only. Pass ``http`` to reuse
    an ``httpx.AsyncClient`` of your own (its base URL is used as is)."""

    def __init__(
        self,
        base_url: str = "http://localhost:8000",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._owned = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def __aenter__(self) -> CryptoCastClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def _get(self, model: type[M], path: str, params: Mapping[str, Any] | None = None) -> M:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self.http.get(path, params=query)
        return model.model_validate(self._json(response))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = response.text
        message = body.get("message", response.text) if isinstance(body, dict) else response.text
        raise CryptoCastError(response.status_code, str(message), body)

    async def symbols(self) -> Symbols:
        return await self._get(Symbols, "/api/v1/symbols")

    async def latest_prediction(self, symbol: str) -> Prediction:
        """The newest prediction for ``symbol`` (404 before the first: ``CryptoCastError``)."""
        return await self._get(Prediction, f"/api/v1/predictions/{symbol}/latest")

    async def predictions_page(
        self,
        symbol: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> PredictionPage:
        """One page, newest target first; ``next_cursor`` is None on the last one."""
        params = {"start": _time(start), "end": _time(end), "limit": limit, "cursor": cursor}
        return await self._get(PredictionPage, f"/api/v1/predictions/{symbol}", params)

    async def verifications_page(
        self,
        symbol: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> VerificationPage:
        params = {"start": _time(start), "end": _time(end), "limit": limit, "cursor": cursor}
        return await self._get(VerificationPage, f"/api/v1/verifications/{symbol}", params)

    async def predictions(
        self,
        symbol: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Prediction]:
        """Every prediction in the range, newest first, page after page (keyset cursors:
        stable while new predictions arrive)."""
        cursor: str | None = None
        while True:
            page = await self.predictions_page(
                symbol, start=start, end=end, limit=page_size, cursor=cursor
            )
            for item in page.data:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def verifications(
        self,
        symbol: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Verification]:
        cursor: str | None = None
        while True:
            page = await self.verifications_page(
                symbol, start=start, end=end, limit=page_size, cursor=cursor
            )
            for item in page.data:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def accuracy(self, symbol: str, window: Window = "7d") -> Accuracy:
        return await self._get(Accuracy, f"/api/v1/accuracy/{symbol}", {"window": window})

    async def model(self, symbol: str) -> ServingModel:
        """The serving model's card and the coin's lifecycle state."""
        return await self._get(ServingModel, f"/api/v1/model/{symbol}")

    async def models_history(self, symbol: str | None = None, limit: int = 100) -> ModelHistory:
        return await self._get(
            ModelHistory, "/api/v1/models/history", {"symbol": symbol, "limit": limit}
        )

    async def operator_request(
        self, symbol: str, action: Action, model: str, reason: str = ""
    ) -> Accepted:
        """Pin, unpin, block or unblock ``model`` (``name@version``) on ``symbol``; needs
        ``api_key``. Accepted means published: the verifier applies it."""
        if not self.api_key:
            raise ValueError("operator requests need an api_key")
        body = OperatorRequest(model=model, reason=reason).model_dump(mode="json")
        response = await self.http.post(
            f"/api/v1/models/{symbol}/{action}", json=body, headers={"X-API-Key": self.api_key}
        )
        return Accepted.model_validate(self._json(response))

    async def pin(self, symbol: str, model: str, reason: str = "") -> Accepted:
        return await self.operator_request(symbol, "pin", model, reason)

    async def unpin(self, symbol: str, model: str, reason: str = "") -> Accepted:
        return await self.operator_request(symbol, "unpin", model, reason)

    async def block(self, symbol: str, model: str, reason: str = "") -> Accepted:
        return await self.operator_request(symbol, "block", model, reason)

    async def unblock(self, symbol: str, model: str, reason: str = "") -> Accepted:
        return await self.operator_request(symbol, "unblock", model, reason)

    async def asyncapi(self) -> dict[str, Any]:
        """The AsyncAPI document of the events (for ``cryptocast_client.events``)."""
        document: dict[str, Any] = self._json(await self.http.get("/asyncapi.json"))
        return document
