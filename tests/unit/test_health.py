"""The consumers' /healthz and /readyz, over a real socket."""

import httpx

from cryptocast_common.health import HealthServer


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
            assert down.json() == {"status": "unavailable",
                                   "reason": "not connected to RabbitMQ (reconnecting)"}
            assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
            assert (await http.get("/metrics")).status_code == 404
            assert (await http.post("/healthz")).status_code == 405
    finally:
        await server.stop()
