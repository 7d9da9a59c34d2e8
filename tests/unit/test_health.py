"""The consumers' /healthz and /readyz, over a real socket."""

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.events import Event
from cryptocast_common.health import HealthServer, readiness


async def test_health_and_readiness_answers() -> None:
    broken = False

    async def check_ready() -> None:
        if broken:
            raise ConnectionError("not connected to RabbitMQ (reconnecting)")

    server = HealthServer("127.0.0.1", 0, check_ready)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            broken = True
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json() == {
                "status": "unavailable",
                "reason": "not connected to RabbitMQ (reconnecting)",
            }
            assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
            assert (await http.get("/nowhere")).status_code == 404
            assert (await http.post("/healthz")).status_code == 405
    finally:
        await server.stop()


async def test_metrics_count_dead_letters_by_queue_and_reason() -> None:
    bus = InMemoryBus()

    async def ignore(events: list[Event]) -> list[Event]:
        return []

    await bus.consume("health-test.queue", ["candle.#"], ignore)
    await bus.publish_raw("candle.BTC.4h", b"not json", "m-1")
    await asyncio.wait_for(bus.drain(), 5)
    await bus.close()
    server = HealthServer("127.0.0.1", 0, bus.ping)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            metrics = (await http.get("/metrics")).text
    finally:
        await server.stop()
    [family] = [
        f for f in text_string_to_metric_families(metrics) if f.name == "cryptocast_dead_lettered"
    ]
    samples = {(s.labels["queue"], s.labels["reason"]): s.value for s in family.samples}
    assert samples[("health-test.queue", "invalid")] == 1


async def test_not_ready_while_a_consume_loop_is_down() -> None:
    bus = InMemoryBus()

    async def ignore(events: list[Event]) -> list[Event]:
        return []

    await bus.consume("health-test.down", ["candle.#"], ignore)
    await bus.ping()
    down = [t for t in asyncio.all_tasks() if t.get_name() == "consume:health-test.down"]
    for task in down:
        task.cancel()
    await asyncio.wait(down)  # the loop has ended, rather than one turn of the event loop
    status, body = await readiness(bus.ping)
    assert status == 503 and "health-test.down is not running" in body["reason"]
    await bus.close()
