"""Everything a gateway replica shares between its consumers and its routes."""

from __future__ import annotations

from dataclasses import dataclass

from cryptocast_common.bus import Bus
from cryptocast_common.coins import coin_of
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.alert_mail import Mailer
from cryptocast_gateway.alert_store import AlertStore
from cryptocast_gateway.api.latest import LatestAnswers
from cryptocast_gateway.cache import LatestPredictions
from cryptocast_gateway.observability import GatewayMetrics
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_gateway.store import EventStore
from cryptocast_gateway.stream import StreamHub


@dataclass
class GatewayState:
    store: EventStore
    alerts: AlertStore
    mailer: Mailer | None  # None: no SMTP configured, alerts are kept but not checked
    latest: LatestPredictions[LatestAnswers]
    bus: Bus
    common: CommonSettings
    settings: GatewaySettings
    metrics: GatewayMetrics
    hub: StreamHub

    @property
    def coins(self) -> list[str]:
        return [coin_of(symbol) for symbol in self.common.symbols]

    def serve(self, symbol: str) -> None:
        """Serve a coin added at run time, beside the configured ones."""
        if symbol not in self.common.symbols:
            self.common.symbols.append(symbol)


async def check_ready(state: GatewayState) -> None:
    """Broker and database reachable."""
    await state.bus.ping()
    await state.store.ping()
