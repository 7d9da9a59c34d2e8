"""The trainer's small HTTP server: ``POST /train`` (X-API-Key), ``GET /train`` (the last
run), ``/healthz``, ``/readyz`` and ``/metrics`` as every service serves them."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import SecretStr

from cryptocast_common.health import HealthServer


def key_accepted(offered: str | None, keys: Sequence[SecretStr]) -> bool:
    """The gateway's rule: one of the configured keys, every key compared in constant time."""
    given = (offered or "").encode()
    valid = [hmac.compare_digest(given, k.get_secret_value().encode()) for k in keys]
    return bool(offered) and any(valid)


class TrainerHttp(HealthServer):
    paths_hint = "try POST /train, /healthz, /readyz, /metrics"

    def __init__(
        self,
        host: str,
        port: int,
        api_keys: Sequence[SecretStr],
        trigger: Callable[[], tuple[int, dict[str, Any]]],
        status: Callable[[], dict[str, Any]],
        check_ready: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(host, port, check_ready)
        self.api_keys, self.trigger, self.status = api_keys, trigger, status

    async def route(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        path = path.split("?", 1)[0]
        if path != "/train":
            return await super().route(method, path, headers)
        if method == "GET":
            return 200, self.status()
        if method != "POST":
            return 405, {"status": "error", "message": "POST /train starts a run"}
        if not key_accepted(headers.get("x-api-key"), self.api_keys):
            return 401, {"status": "error", "message": "a valid X-API-Key header is required"}
        return self.trigger()
