"""``make up``: the whole pipeline in one process on the embedded default.

An embedded MongoDB wire server (data under .data/) unless CRYPTOCAST_MONGO_URL is set, the
in-memory bus unless CRYPTOCAST_AMQP_URL is set, the four services, a replay of the bundled
history, and the API on 127.0.0.1:8000 (CRYPTOCAST_GATEWAY_PORT). Stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from cryptocast.embedded_mongo import EmbeddedMongo
from cryptocast_common.logging import configure_logging
from cryptocast_common.runtime import (
    Service,
    connect_bus,
    exit_on_configuration_error,
    serve_until_signalled,
)
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import bootstrap as gateway
from cryptocast_inference.bootstrap import bootstrap as inference
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_ingestor.bootstrap import bootstrap as ingestor
from cryptocast_verifier.bootstrap import bootstrap as verifier

log = logging.getLogger("cryptocast.up")
DATA_DIR = Path(os.environ.get("CRYPTOCAST_DATA_DIR", ".data"))


async def run() -> None:
    mongo = None
    if "CRYPTOCAST_MONGO_URL" not in os.environ:
        mongo = EmbeddedMongo(DATA_DIR / "mongo")
        await mongo.astart()
        os.environ["CRYPTOCAST_MONGO_URL"] = mongo.url
        log.info("embedded MongoDB wire server started", extra={"url": mongo.url})
    try:
        common = CommonSettings()
        bus = await connect_bus(common)
        api = await gateway(common, bus=bus)
        settings = InferenceSettings(gateway_url=f"http://127.0.0.1:{api.state.settings.port}")
        if "CRYPTOCAST_INFERENCE_CHALLENGERS" not in os.environ:  # the demo shows a challenger
            settings = settings.model_copy(update={"challengers": [LSTM_MODEL]})
        services: list[Service] = [
            api,
            await verifier(common, bus=bus),
            await inference(common, settings, bus=bus),
            await ingestor(common, bus=bus),
        ]
        try:
            log.info(
                "CryptoCast is up",
                extra={"api": f"http://{api.state.settings.host}:{api.state.settings.port}/btc"},
            )
            await serve_until_signalled(services)
        finally:
            await bus.close()
    finally:
        if mongo:
            mongo.stop()


def main() -> None:
    configure_logging(CommonSettings().log_level)
    exit_on_configuration_error(lambda: asyncio.run(run()))


if __name__ == "__main__":
    main()
