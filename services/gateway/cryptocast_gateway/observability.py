"""Prometheus metrics of the gateway, in a registry of its own (one per app)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cryptocast_common.events import Event
from cryptocast_common.health import DeadLetterCollector

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


GaugeValues = dict[tuple[str, ...], float]  # label values -> value
AccuracyValues = GaugeValues  # (symbol, model, metric) -> value


class ReadAtScrape(Collector):
    """A gauge family read from the store when ``/metrics`` is scraped rather than on the
    consumer's path; at most one read every ``max_age`` seconds, however often it is
    scraped."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.max_age, self.clock = max_age, clock
        self.values: GaugeValues = {}
        self._refreshed = -math.inf

    async def refresh(self, compute: Callable[[], Awaitable[GaugeValues]]) -> None:
        """Recompute unless fresh; on a failed read the last values stay (and it is logged),
        so the other metrics are still served while the database is away."""
        now = self.clock()
        if now - self._refreshed < self.max_age:
            return
        self._refreshed = now
        try:
            self.values = await compute()
        except Exception as error:
            log.warning("gauges not refreshed", extra={"gauge": self.name, "error": repr(error)})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(labels), value)
        yield family


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "cryptocast_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.consumed = Counter(
            "cryptocast_events_consumed",
            "Events delivered to the gateway, by type",
            ["type"],
            registry=self.registry,
        )
        self.persisted = Counter(
            "cryptocast_events_persisted",
            "Events written to MongoDB, by type",
            ["type"],
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "cryptocast_stream_clients", "Connected WebSocket clients", registry=self.registry
        )
        self.stream_dropped = Counter(
            "cryptocast_stream_clients_dropped",
            "WebSocket clients disconnected for falling behind",
            registry=self.registry,
        )
        self.stream_refused = Counter(
            "cryptocast_stream_clients_refused",
            "WebSocket clients refused past a cap",
            registry=self.registry,
        )
        self.alerts_sent = Counter(
            "cryptocast_alerts_sent", "Price alert emails sent", registry=self.registry
        )
        self.accuracy = ReadAtScrape(
            "cryptocast_accuracy",
            "Accuracy over the latest 100 verified predictions",
            ["symbol", "model", "metric"],
        )
        self.gates = ReadAtScrape(
            "cryptocast_model_gate_open",
            "1 while the coin's champion serves its own point "
            "forecast, 0 while its gate serves no change",
            ["symbol", "model"],
        )
        self.registry.register(self.accuracy)
        self.registry.register(self.gates)
        self.registry.register(DeadLetterCollector())

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)

    def count(self, counter: Counter, events: Sequence[Event]) -> None:
        for event in events:
            counter.labels(event.type).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
