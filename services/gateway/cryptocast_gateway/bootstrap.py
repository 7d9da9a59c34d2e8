"""Composition root of the gateway: MongoDB store, bus consumer and HTTP server."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from cryptocast_common.bus import Bus
from cryptocast_common.events import Event
from cryptocast_common.runtime import Resources, indexed
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.alert_mail import SmtpMailer
from cryptocast_gateway.alert_store import AlertStore, InMemoryAlertStore, MongoAlertStore
from cryptocast_gateway.api.app import create_app
from cryptocast_gateway.api.latest import render_latest
from cryptocast_gateway.cache import LatestPredictions
from cryptocast_gateway.handlers import follow_live, mail_alerts, notify_changes, persist
from cryptocast_gateway.http_server import guarded_http
from cryptocast_gateway.notify import (
    InMemoryNotificationLog,
    MongoNotificationLog,
    NotificationLog,
    Notifier,
    notification_counter,
)
from cryptocast_gateway.notify_http import build_notifier, notify_client
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.state import GatewayState, check_ready
from cryptocast_gateway.store import EventStore, MongoEventStore
from cryptocast_gateway.stream import StreamHub

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 10


@dataclass
class Gateway:
    state: GatewayState
    app: FastAPI
    resources: Resources
    serve_http: bool
    name: str = "gateway"
    # None: no channel configured and alerts may not have webhooks of their own.
    notifier: Notifier | None = None
    told: NotificationLog = field(default_factory=InMemoryNotificationLog)
    _server: uvicorn.Server | None = field(default=None, init=False)
    _server_task: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._server is not None and self._server.servers
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def check_ready(self) -> None:
        await check_ready(self.state)

    async def start(self) -> None:
        state = self.state

        async def store_all(events: list[Event]) -> list[Event]:
            return await persist(events, state)

        async def live(events: list[Event]) -> list[Event]:
            return await follow_live(events, state)

        await state.bus.consume(
            state.common.queue_for("gateway"),
            ["#"],
            store_all,
            batch_size=state.settings.batch_size,
        )
        notifier = self.notifier
        if state.mailer is not None or notifier is not None:

            async def alert(events: list[Event]) -> list[Event]:
                return await mail_alerts(
                    events, state.alerts, state.mailer, state.metrics, notifier
                )

            await state.bus.consume(
                state.common.queue_for("gateway.alerts"),
                ["candle.#"],
                alert,
                batch_size=state.settings.batch_size,
            )
        if notifier is not None and notifier.broadcasts and state.settings.notify_changes:
            kinds = frozenset(state.settings.notify_changes)

            async def tell(events: list[Event]) -> list[Event]:
                return await notify_changes(events, notifier, self.told, kinds)

            await state.bus.consume(
                state.common.queue_for("gateway.notify"),
                ["model_change.#"],
                tell,
                batch_size=state.settings.batch_size,
            )
        replica = f"{state.common.queue_for('gateway')}.live.{uuid.uuid4().hex[:12]}"
        await state.bus.consume(
            replica,
            ["prediction.#", "verification.#", "coin_added.#"],
            live,
            batch_size=state.settings.batch_size,
            exclusive=True,
        )
        # Subscribed first, then loaded: a prediction stored in between is not missed.
        for symbol in await state.store.coins_added():
            state.serve(symbol)
        for symbol in state.common.symbols:
            found = await state.store.latest_prediction(symbol, state.common.interval)
            if found:
                state.latest.update(found)
        if self.serve_http:
            settings = state.settings
            config = uvicorn.Config(
                self.app,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                http=guarded_http(settings.max_header_bytes, settings.header_timeout_seconds),
                proxy_headers=False,  # the app decides whose X-Forwarded-For to believe
                # Requests still open then are cut, well inside the 30 s between SIGTERM and
                # SIGKILL, so that the consumers' batches are settled before the exit.
                timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            )
            self._server = uvicorn.Server(config)
            self._server_task = asyncio.create_task(self._server.serve())
            while not self._server.started:
                if self._server_task.done():
                    self._server_task.result()  # re-raises why it could not start
                    raise RuntimeError("HTTP server stopped before it started")
                await asyncio.sleep(0.02)
        # Everything allocated so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall requests by tens of milliseconds.
        gc.freeze()

    async def stop(self) -> None:
        if self._server and self._server_task:
            self._server.should_exit = True
            await self._server_task
        await self.resources.close()


async def bootstrap(
    common: CommonSettings | None = None,
    settings: GatewaySettings | None = None,
    bus: Bus | None = None,
    store: EventStore | None = None,
    alerts: AlertStore | None = None,
    serve_http: bool = True,
    told: NotificationLog | None = None,
) -> Gateway:
    common = common or CommonSettings()
    # Its own list of the coins served, which grows as coins are added at run time (the
    # services of `make up` share one settings object).
    common = common.model_copy(update={"symbols": list(common.symbols)})
    settings = settings or GatewaySettings()
    resources = Resources()
    if store is None:
        database = resources.database(common)
        store = await indexed(MongoEventStore(database))
        alerts = alerts or await indexed(MongoAlertStore(database))
        told = told or MongoNotificationLog(database)
    mailer = SmtpMailer(settings) if settings.smtp_host else None
    metrics = GatewayMetrics()
    client = notify_client(settings)
    resources.own(client.aclose)
    notifier = build_notifier(settings, client, notification_counter(metrics.registry))
    if mailer is None and (notifier is None or not notifier.broadcasts):
        log.warning(
            "neither CRYPTOCAST_GATEWAY_SMTP_HOST nor a notification channel is set: only "
            "price alerts with a webhook of their own are checked"
        )
    hub = StreamHub(
        metrics,
        settings.stream_queue_size,
        settings.stream_heartbeat_seconds,
        settings.stream_max_clients,
        settings.stream_max_clients_per_address,
    )
    state = GatewayState(
        store,
        alerts or InMemoryAlertStore(),
        mailer,
        LatestPredictions(common.interval, render_latest),
        await resources.bus(common, bus),
        common,
        settings,
        metrics,
        hub,
    )
    return Gateway(
        state,
        create_app(state),
        resources,
        serve_http=serve_http,
        notifier=notifier,
        told=told or InMemoryNotificationLog(),
    )
