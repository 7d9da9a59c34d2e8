"""The dashboard's files and what only it reads, GET /api/v1/skill/{symbol}, in memory; the
page itself runs in Chromium in tests/e2e/test_dashboard.py."""

import httpx
import pytest

from cryptocast_common.events import Prediction
from cryptocast_gateway.bootstrap import Gateway
from cryptocast_verifier.scoring import verify
from tests.factories import prediction


async def test_dashboard_files_are_served(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/dashboard")
    assert (redirect.status_code, redirect.headers["location"]) == (307, "dashboard/")
    page = await client.get("/dashboard/")
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="dashboard.js">' in page.text
    for path, kind in (("dashboard.js", "javascript"), ("vendor/uPlot.esm.js", "javascript")):
        answer = await client.get(f"/dashboard/{path}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert (await client.get("/dashboard/nothing.js")).status_code == 404


async def test_skill_over_time_and_calibration(gateway: Gateway, client: httpx.AsyncClient) -> None:
    actual = [102.5 - (i % 5) for i in range(20)]  # never a tie with the last close
    made = [
        Prediction.model_validate(
            prediction(i, base=100.0 + i % 2, predicted=100.5 + i % 4).model_dump()
            | {
                "interval_80": {"lower": 99.0, "upper": 103.0},
                "interval_95": {"lower": 98.0, "upper": 104.0},
                "p_up": 0.3 if i % 2 else 0.7,
            }
        )
        for i in range(20)
    ]
    verdicts = [verify(p, close, 2.0) for p, close in zip(made, actual, strict=True)]
    await gateway.state.bus.publish([*made, *verdicts])
    await gateway.state.bus.drain()  # type: ignore[attr-defined]

    answer = await client.get("/api/v1/skill/btc", params={"trailing": 10, "points": 3})
    (model,) = answer.json()["models"].values()
    points = model["over_time"]
    assert [p["n"] for p in points] == [10, 10, 10]
    for point, end in zip(points, (10, 15, 20), strict=True):
        window = verdicts[end - 10 : end]
        assert point["time"] == window[-1].target_time.isoformat().replace("+00:00", "Z")
        errors = sum(abs(v.predicted_close - v.actual_close) for v in window)
        naive = sum(abs(v.based_on_close - v.actual_close) for v in window)
        assert point["mae_ratio"] == pytest.approx(errors / naive)
        low, high = point["mae_ratio_ci"]
        assert low <= point["mae_ratio"] <= high
        inside = [v.inside_80 for v in window]
        assert point["coverage_80"] == sum(inside) / 10 and point["coverage_95"] == 1.0
    # Equal forecasts share a bin: two bins, however many are asked for.
    ups = {
        p_up: [v.went_up for v, p in zip(verdicts, made, strict=True) if p.p_up == p_up]
        for p_up in (0.3, 0.7)
    }
    assert model["calibration"] == [
        {"n": 10, "mean_p_up": pytest.approx(p_up), "up_share": sum(up) / 10}
        for p_up, up in ups.items()
    ]
    assert (await client.get("/api/v1/skill/doge")).status_code == 404
