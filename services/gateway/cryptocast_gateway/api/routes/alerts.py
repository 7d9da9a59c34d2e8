"""The original's price alerts: sign up publicly, switch off with an API key."""

from __future__ import annotations

import math
from typing import Any

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Request

from cryptocast_common.coins import COINGECKO_IDS
from cryptocast_gateway.alerts import Alert
from cryptocast_gateway.api.deps import ApiError, ApiKey, State
from cryptocast_gateway.api.routes.legacy import FlaskJSONResponse

router = APIRouter(tags=["original API"])
SYMBOL_BY_COINGECKO_ID = {coin_id: symbol for symbol, coin_id in COINGECKO_IDS.items()}
BODY_EXAMPLE = {"email": "you@example.com", "coin": "btc", "threshold": 70000,
                "direction": "above"}


def _refuse(message: str) -> ApiError:
    return ApiError(400, {"status": "error", "message": message})


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _refuse("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _refuse("the body must be a JSON object")
    return body


def _email(value: Any) -> str:
    try:
        return validate_email(str(value).strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise _refuse(f"invalid email: {error}") from None


def _symbol(value: Any, state: State) -> str:
    """``btc``, ``BTC`` or the original's CoinGecko id (``bitcoin``) of a configured coin."""
    coin = str(value).strip().lower()
    symbol = SYMBOL_BY_COINGECKO_ID.get(coin, coin).upper()
    if symbol not in state.common.symbols:
        raise _refuse(f"unknown coin {coin!r}; known coins: {', '.join(state.coins)}")
    return symbol


@router.post("/alert", response_class=FlaskJSONResponse, openapi_extra={"requestBody": {
    "content": {"application/json": {"example": BODY_EXAMPLE}}}})
async def create_alert(request: Request, state: State) -> Any:
    """Email me once when ``coin`` closes at or ``above`` (or at or ``below``) ``threshold``."""
    body = await _json_object(request)
    if not body.get("email") or not body.get("coin") or body.get("threshold") is None:
        raise _refuse("Missing required fields")
    try:
        threshold = float(body["threshold"])
    except (TypeError, ValueError):
        raise _refuse("threshold must be a number") from None
    if not math.isfinite(threshold) or threshold <= 0:
        raise _refuse("threshold must be greater than 0")
    direction = body.get("direction", "above")
    if direction not in ("above", "below"):
        raise _refuse("direction must be above or below")
    alert = Alert(email=_email(body["email"]), symbol=_symbol(body["coin"], state),
                  threshold=threshold, direction=direction)
    await state.alerts.add(alert)
    return {"status": "Success", "message": "Alert created"}


@router.delete("/alert", response_class=FlaskJSONResponse, dependencies=[ApiKey],
               responses={401: {"description": "missing or wrong X-API-Key"}})
async def delete_alerts(request: Request, state: State) -> Any:
    """Switch off an email's active alerts for a coin; answers how many there were."""
    body = await _json_object(request)
    if not body.get("email") or not body.get("coin"):
        raise _refuse("email and coin required")
    count = await state.alerts.deactivate(_email(body["email"]), _symbol(body["coin"], state))
    return {"status": "Success", "deactivated": count}
