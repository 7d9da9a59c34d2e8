"""The answers of the two hot reads, ``GET /<coin>`` and
``GET /api/v1/predictions/<symbol>/latest``, rendered once per prediction.

Both carry an ``ETag`` and ``Cache-Control: no-cache``: a client or proxy may keep an answer
but must ask again before using it, since a new prediction can arrive at any moment; asking
with ``If-None-Match: <the ETag>`` costs a 304 without a body while the prediction is current.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Response

from cryptocast_common.events import Prediction
from cryptocast_gateway.legacy import flask_json, prediction_view

IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="The ETag of an answer you have: 304 without a body "
        "while it is still the latest",
    ),
]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "If-None-Match names the current ETag; no body"}
}


@dataclass(frozen=True)
class LatestAnswers:
    """What the two endpoints answer for one prediction."""

    etag: str
    validators: tuple[tuple[bytes, bytes], ...]  # ETag and Cache-Control, encoded
    original: bytes  # GET /<coin>, the original's bytes
    v1: bytes  # GET /api/v1/predictions/<symbol>/latest

    def response(self, body: bytes, if_none_match: str | None) -> Response:
        """``body`` with the validators, or 304 if ``If-None-Match`` names the ETag."""
        if if_none_match is not None and _names(if_none_match, self.etag):
            response = Response(status_code=304)
        else:
            response = Response(body, media_type="application/json")
        response.raw_headers += self.validators
        return response


def render_latest(prediction: Prediction) -> LatestAnswers:
    v1 = prediction.to_json()
    etag = entity_tag(prediction, v1)
    return LatestAnswers(
        etag,
        ((b"etag", etag.encode()), (b"cache-control", b"no-cache")),
        flask_json(prediction_view(prediction)),
        v1,
    )


def entity_tag(prediction: Prediction, body: bytes) -> str:
    """The prediction id and a digest of its content: the id names only the target (model,
    symbol, interval, time), and a prediction recorded again for the same target keeps it."""
    digest = hashlib.blake2b(body, digest_size=6).hexdigest()
    return f'"{prediction.event_id}~{digest}"'


def _names(if_none_match: str, etag: str) -> bool:
    """Whether the header names ``etag`` or is ``*``, by RFC 9110's weak comparison
    (``W/"x"`` matches ``"x"``)."""
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in if_none_match.split(","))
