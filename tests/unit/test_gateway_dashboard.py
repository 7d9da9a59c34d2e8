"""The dashboard's files and what only it reads, GET /api/v1/skill/{symbol}, in memory; the
page itself runs in Chromium in tests/e2e/test_dashboard.py."""

import threading
from typing import Any

import httpx
import pytest

from cryptocast_common.events import Prediction, Verification
from cryptocast_common.scorecard import scorecard
from cryptocast_gateway.api.routes import skill
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


def record(count: int) -> tuple[list[Prediction], list[Verification]]:
    actual = [102.5 - (i % 5) for i in range(count)]  # never a tie with the last close
    made = [
        Prediction.model_validate(
            prediction(i, base=100.0 + i % 2, predicted=100.5 + i % 4).model_dump()
            | {
                "interval_80": {"lower": 99.0, "upper": 103.0},
                "interval_95": {"lower": 98.0, "upper": 104.0},
                "p_up": 0.3 if i % 2 else 0.7,
            }
        )
        for i in range(count)
    ]
    return made, [verify(p, close, 2.0) for p, close in zip(made, actual, strict=True)]


async def test_skill_over_time_and_calibration(gateway: Gateway, client: httpx.AsyncClient) -> None:
    made, verdicts = record(20)
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


async def test_skill_is_kept_until_the_next_verdict(
    gateway: Gateway, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cards: list[threading.Thread] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        cards.append(threading.current_thread())
        return scorecard(*args, **kwargs)

    monkeypatch.setattr(skill, "scorecard", counted)
    made, verdicts = record(21)
    await gateway.state.bus.publish([*made, *verdicts[:20]])
    await gateway.state.bus.drain()  # type: ignore[attr-defined]

    asked = {"trailing": 10, "points": 3}
    first = await client.get("/api/v1/skill/btc", params=asked)
    assert len(cards) == 3  # one model, three moments
    assert threading.main_thread() not in cards  # in a worker, not on the event loop
    again = await client.get("/api/v1/skill/BTC", params=asked)
    assert again.json() == first.json() and len(cards) == 3  # from the cache
    await client.get("/api/v1/skill/btc", params={"trailing": 10, "points": 2})
    assert len(cards) == 5  # other parameters, another answer

    # Another model's verdict at the newest target time, which sorts below the one before.
    other = verify(prediction(19, model="aaa"), 102.0, 2.0)
    await gateway.state.bus.publish([other])
    await gateway.state.bus.drain()  # type: ignore[attr-defined]
    both = await client.get("/api/v1/skill/btc", params=asked)
    assert list(both.json()["models"]) == ["aaa@1", str(made[0].model)]
    assert len(cards) == 5 + 3  # computed afresh ("aaa" has too few verdicts for a card)

    await gateway.state.bus.publish([verdicts[20]])
    await gateway.state.bus.drain()  # type: ignore[attr-defined]
    newer = await client.get("/api/v1/skill/btc", params=asked)
    assert len(cards) == 8 + 3  # a new verdict: computed afresh
    model = newer.json()["models"][str(made[0].model)]
    newest = verdicts[20].target_time.isoformat().replace("+00:00", "Z")
    assert model["over_time"][-1]["time"] == newest


@pytest.mark.parametrize(
    "params",
    [
        {"trailing": skill.MAX_TRAILING + 1},
        {"trailing": skill.MIN_VERDICTS - 1},
        {"points": skill.MAX_POINTS + 1},
        {"points": 0},
    ],
)
async def test_skill_refuses_parameters_beyond_its_caps(
    client: httpx.AsyncClient, params: dict[str, int]
) -> None:
    # The gateway answers every invalid parameter with 400 naming it (FastAPI's 422 otherwise).
    answer = await client.get("/api/v1/skill/btc", params=params)
    assert answer.status_code == 400 and f"query.{next(iter(params))}" in answer.json()["message"]
    assert skill.MAX_TRAILING == 500 and skill.MAX_POINTS == 50
