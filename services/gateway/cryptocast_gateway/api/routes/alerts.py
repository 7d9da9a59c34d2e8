"""The original's price alerts: sign up publicly, switch off with an API key."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from fastapi import APIRouter, Request

from cryptocast_common.coins import coin_names, symbol_of_coin_name
from cryptocast_common.prices import is_price
from cryptocast_gateway.alerts import Alert
from cryptocast_gateway.api.deps import ApiError, ApiKey, State
from cryptocast_gateway.api.errors import ErrorBody
from cryptocast_gateway.api.routes.legacy import FlaskJSONResponse
from cryptocast_gateway.notify import check_webhook_url

router = APIRouter(tags=["original API"])
BODY_EXAMPLE = {"email": "you@example.com", "coin": "btc", "threshold": 70000, "direction": "above"}
# A threshold sent as text, as forms do: a positive decimal of at most 15 digits either side.
THRESHOLD_TEXT = r"^(?:[1-9][0-9]{0,14}(?:\.[0-9]{1,15})?|0?\.[0-9]{0,14}[1-9][0-9]{0,15})$"
LARGEST_FLOAT = 1.7976931348623157e308


def _any_case(name: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)


# What the email check refuses beyond "format: email", said in the document: quoted local
# parts, address literals, a domain without a dot or with a numeric top level, special-use
# domains (.test, .local, ...).
DELIVERABLE_EMAIL = r'^[^@"]+@(?!(?:.*\.)?(?:{})$)[^@"\[\]]*\.[^@".\[\]0-9-][^@".\[\]]*$'.format(
    "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
)


def webhook_pattern(allow_http: bool = False) -> str:
    """An alert's webhook under the default settings: https, a host by name (labels of
    letters, digits and hyphens, a top level of letters; not ``localhost``), an optional
    port, printable ASCII after it. Address literals are refused, and names are resolved and
    checked for a public address when the webhook is called."""
    label = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    port = "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
    return (
        rf"^https{'?' if allow_http else ''}://"
        rf"(?!(?:[^/?#:]*\.)?{_any_case('localhost')}(?:[/?#:]|$))"
        rf"{label}(?:\.{label})*\.[A-Za-z]{{2,63}}(?::(?:{port}))?(?:[/?#][!-~]*)?$"
    )


REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a missing or invalid field"}
}


def body_schemas(coins: Sequence[str]) -> dict[str, Any]:
    """JSON schemas of the alert bodies, for the OpenAPI document: they depend on the
    configured coins, and the handlers check bodies by hand to keep the original's
    messages."""
    coin = {"type": "string", "enum": coin_names(coins)}
    email = {"type": "string", "format": "email", "pattern": DELIVERABLE_EMAIL}
    threshold = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": LARGEST_FLOAT},
            {"type": "string", "pattern": THRESHOLD_TEXT},
        ]
    }
    return {
        "AlertRequest": {
            "type": "object",
            "required": ["email", "coin", "threshold"],
            "properties": {
                "email": email,
                "coin": coin,
                "threshold": threshold,
                "direction": {"enum": ["above", "below"], "default": "above"},
                "webhook": {
                    "type": "string",
                    "pattern": webhook_pattern(),
                    "maxLength": 2048,
                    "description": "Also POST the alert as signed JSON to this https URL (a "
                    "public address); the answer then carries the webhook_secret it is "
                    "signed with",
                },
            },
            "example": BODY_EXAMPLE,
        },
        "AlertDeletion": {
            "type": "object",
            "required": ["email", "coin"],
            "properties": {"email": email, "coin": coin},
        },
    }


def _body(schema: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    }


def _refuse(message: str) -> ApiError:
    return ApiError(400, {"status": "error", "message": message})


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        raise _refuse("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _refuse("the body must be a JSON object")
    return body


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise _refuse("invalid email: it must be a string")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise _refuse(f"invalid email: {error}") from None


def _symbol(value: Any, state: State) -> str:
    """A name from ``coin_names`` of a configured coin."""
    symbol = symbol_of_coin_name(value, state.common.symbols) if isinstance(value, str) else None
    if symbol is None:
        raise _refuse(f"unknown coin {value!r}; known coins: {', '.join(state.coins)}")
    return symbol


def _webhook(value: Any, state: State) -> str:
    settings = state.settings
    if not settings.alert_webhooks:
        raise _refuse("webhook alerts are not enabled")
    if not isinstance(value, str):
        raise _refuse("webhook must be a string")
    if not settings.alert_webhook_allow_private and not re.fullmatch(
        webhook_pattern(settings.alert_webhook_allow_http), value
    ):
        raise _refuse("webhook must be an https URL naming a public host by name")
    try:
        return check_webhook_url(
            value, settings.alert_webhook_allow_http, settings.alert_webhook_allow_private
        )
    except ValueError as error:
        raise _refuse(str(error)) from None


def _threshold(value: Any) -> float:
    """A JSON number, or a decimal string as THRESHOLD_TEXT; finite and above 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | str)
        or (isinstance(value, str) and not re.fullmatch(THRESHOLD_TEXT, value))
    ):
        raise _refuse("threshold must be a number")
    try:
        threshold = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise _refuse("threshold must be at most 1.8e308") from None
    if not is_price(threshold):
        raise _refuse("threshold must be greater than 0")
    return threshold


@router.post(
    "/alert",
    response_class=FlaskJSONResponse,
    responses=REFUSED,
    openapi_extra=_body("AlertRequest"),
)
async def create_alert(request: Request, state: State) -> Any:
    """Email me once when ``coin`` closes at or ``above`` (or at or ``below``) ``threshold``;
    with ``webhook``, also POST it there, signed with the ``webhook_secret`` answered."""
    body = await _json_object(request)
    if not body.get("email") or not body.get("coin") or body.get("threshold") is None:
        raise _refuse("Missing required fields")
    threshold = _threshold(body["threshold"])
    direction = body.get("direction", "above")
    if direction not in ("above", "below"):
        raise _refuse("direction must be above or below")
    webhook = _webhook(body["webhook"], state) if "webhook" in body else None
    alert = Alert(
        email=_email(body["email"]),
        symbol=_symbol(body["coin"], state),
        threshold=threshold,
        direction=direction,
        webhook=webhook,
        webhook_secret=secrets.token_hex(32) if webhook else None,
    )
    await state.alerts.add(alert)
    if alert.webhook_secret is not None:
        return {
            "status": "Success",
            "message": "Alert created",
            "webhook_secret": alert.webhook_secret,
        }
    return {"status": "Success", "message": "Alert created"}


@router.delete(
    "/alert",
    response_class=FlaskJSONResponse,
    dependencies=[ApiKey],
    openapi_extra=_body("AlertDeletion"),
    responses={**REFUSED, 401: {"model": ErrorBody, "description": "missing or wrong X-API-Key"}},
)
async def delete_alerts(request: Request, state: State) -> Any:
    """Switch off an email's active alerts for a coin; answers how many there were."""
    body = await _json_object(request)
    if not body.get("email") or not body.get("coin"):
        raise _refuse("email and coin required")
    count = await state.alerts.deactivate(_email(body["email"]), _symbol(body["coin"], state))
    return {"status": "Success", "deactivated": count}
