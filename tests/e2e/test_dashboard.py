"""The dashboard in real headless Chromium (Debian's, driven by Playwright) against a running
gateway over RabbitMQ and the Mongo wire server. The gateway is fed what the services would
publish over the newest bundled BTC candles: the candles, the shipped model's forecasts with
no change's beside them, their verdicts (the verifier's own scoring), the model card and the
gate's changes by the policy's rule. A missing Chromium fails the test: run
``scripts/ensure-chromium.sh`` (``make test`` does)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect
from pymongo import AsyncMongoClient

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.events import (
    BasedOn,
    Candle,
    Event,
    Evidence,
    Gate,
    ModelChange,
    ModelRef,
    Prediction,
    Verification,
)
from cryptocast_common.lifecycle import NAIVE, LifecyclePolicy, Score, judge
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import Gateway, bootstrap
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.distribution import load_distribution
from cryptocast_inference.series import read_candles
from cryptocast_inference.settings import InferenceSettings
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.settings import TOLERANCE_PCT
from tests.waiting import eventually

REPO = Path(__file__).parents[2]
CHROMIUM = Path(os.environ.get("CRYPTOCAST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = REPO / ".artifacts" / "dashboard.png"
DATA = REPO / "services/ingestor/cryptocast_ingestor/data/binance_4h/BTC_4h.csv.gz"
FORECASTS = 150  # candles forecast; the gate opens after the policy's least record
POLICY = LifecyclePolicy()
SETTINGS = InferenceSettings()
CHAMPION = load_distribution(artifact_dir(SETTINGS.artifacts_dir, SETTINGS.model))
BASELINE = ModelRef.parse(NAIVE)
CHARTS = ("price-chart", "skill-chart", "calibration-chart")
# The share of a chart's pixels in colour, not grey: its series and bands, not its axes.
COLOURED = """id => {
  const canvas = document.querySelector(`#${id} canvas`);
  const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < px.length; i += 4) {
    const [r, g, b, a] = px.slice(i, i + 4);
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured++;
  }
  return coloured / (px.length / 4);
}"""


def recent(candles: list[Candle]) -> list[Candle]:
    """``candles`` moved by whole days to end within the last day: the page scores the
    verdicts of the last 30 days."""
    shift = timedelta(days=(datetime.now(UTC) - candles[-1].close_time).days)
    return [
        Candle.model_validate(
            c.model_dump(exclude={"event_id", "occurred_at"})
            | {"open_time": c.open_time + shift, "close_time": c.close_time + shift}
        )
        for c in candles
    ]


def shown(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def forecasts(window: list[Candle], gate: Gate) -> list[Prediction]:
    """The champion's prediction from ``window`` as inference serves it, and no change's."""
    last = window[-1]
    (forecast,) = CHAMPION.predict_distribution([window])
    made: dict[str, Any] = dict(
        symbol=last.symbol,
        interval=last.interval,
        based_on=BasedOn(close_time=last.close_time, close=last.close),
        target_time=last.close_time + (last.close_time - last.open_time),
    )
    champion = Prediction(
        **made,
        predicted_close=forecast.point if gate == "open" else last.close,
        model_close=None if gate == "open" else forecast.point,
        model=CHAMPION.model,
        skill=CHAMPION.skill,
        role="champion",
        gate=gate,
        interval_80={"lower": forecast.lower_80, "upper": forecast.upper_80},
        interval_95={"lower": forecast.lower_95, "upper": forecast.upper_95},
        p_up=forecast.p_up,
    )
    return [
        champion,
        Prediction(**made, predicted_close=last.close, model=BASELINE, role="baseline"),
    ]


def record_of(verdicts: list[Verification]) -> list[Score]:
    """The champion's live record as the policy judges it: its own errors, gated or not."""
    return [
        Score(v.target_time, v.model_error_pct or v.error_pct, v.naive_error_pct) for v in verdicts
    ]


def gate_change(kind: str, evidence: Evidence, at: Candle, reason: str) -> ModelChange:
    return ModelChange(
        symbol=at.symbol,
        interval=at.interval,
        kind=kind,
        model=CHAMPION.model,
        evidence=evidence,
        by="policy",
        reason=reason,
        decided_at=at.close_time,
    )


def replay(candles: list[Candle]) -> tuple[list[Event], list[Event]]:
    """What the services publish over ``candles``: up to the one before the last, and then
    for the last (the candle, its verdicts and the next forecasts), which the page must
    show live."""
    window = CHAMPION.window
    steps: list[list[Event]] = []
    verdicts: list[Verification] = []
    gate: Gate = "closed"
    pending: list[Prediction] = []
    for end in range(window, len(candles) + 1):
        candle = candles[end - 1]
        judged = [verify(p, candle.close, TOLERANCE_PCT) for p in pending]
        verdicts += [v for v in judged if v.role == "champion"]
        step: list[Event] = [candle, *judged]
        evidence = judge(record_of(verdicts[-POLICY.verdicts :]))
        if gate == "closed" and evidence.n >= POLICY.min_verdicts and evidence.dm < POLICY.critical:
            gate = "open"
            step.append(gate_change("gate_opened", evidence, candle, "not worse than no change"))
        pending = forecasts(candles[end - window : end], gate)
        steps.append([*step, *pending])
    started = gate_change("gate_closed", judge([]), candles[window - 1], "a new champion")
    first = [*candles[: window - 1], *CHAMPION.cards(["BTC", "ETH"], "4h"), started]
    return first + [event for step in steps[:-1] for event in step], steps[-1]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh (make test does)")
    return CHROMIUM


@pytest.fixture
async def gateway(common: CommonSettings) -> AsyncIterator[Gateway]:
    """A gateway on a free port; the test publishes on its own bus."""
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    service = await bootstrap(
        common, GatewaySettings(port=0, rate_limit_per_minute=0, access_log=False), bus=bus
    )
    await service.start()
    yield service
    await service.stop()
    await bus.close()
    async with AsyncMongoClient[dict[str, Any]](common.mongo_url) as mongo:
        await mongo.drop_database(common.mongo_db)


async def test_dashboard_draws_the_real_record_and_follows_the_stream(
    chromium: Path, gateway: Gateway
) -> None:
    candles = recent(read_candles(DATA, "BTC", "4h")[-(CHAMPION.window + FORECASTS) :])
    before, live = replay(candles)
    await gateway.state.bus.publish(before)
    base = f"http://127.0.0.1:{gateway.port}"
    verdicts = [e for e in before if isinstance(e, Verification)]
    served = [e for e in before if isinstance(e, Prediction) and e.role == "champion"]
    async with httpx.AsyncClient(base_url=base) as http:

        async def all_stored() -> bool:
            page = await http.get("/api/v1/verifications/btc", params={"limit": 500})
            latest = await http.get("/api/v1/predictions/btc/latest")
            return (
                len(page.json()["data"]) == len(verdicts)
                and latest.json().get("event_id") == served[-1].event_id
            )

        await eventually(all_stored, within=30)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.url}: {r.status}"))
        await page.goto(f"{base}/dashboard")
        assert page.url == f"{base}/dashboard/"
        await expect(page.locator("#live")).to_have_text("live")
        await shows_the_record(page, candles[-2], served, verdicts)

        await gateway.state.bus.publish(live)
        judged = [e for e in live if isinstance(e, Verification)]
        await shows_the_record(page, candles[-1], [*served, live[-2]], verdicts + judged)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=SCREENSHOT, full_page=True)

        await page.select_option("#symbol", "ETH")  # a model card, no champion yet
        await expect(page.locator("#gate")).to_contain_text("none serving yet")
        await expect(page.locator("#last-close")).to_have_text("–")
        await expect(page.locator("#verdicts tbody tr")).to_have_count(0)
        assert page.url.endswith("#ETH")
        await browser.close()
    # A coin with no champion yet is answered 404 by /api/v1/model (the page says so);
    # Chromium reports that response and logs it: nothing else may fail.
    no_champion = f"{base}/api/v1/model/ETH"
    assert [p for p in problems if no_champion not in p and "404 (Not Found)" not in p] == []
    assert any(no_champion in p for p in problems)


async def shows_the_record(
    page: Page, last: Candle, served: list[Prediction], verdicts: list[Verification]
) -> None:
    """The page shows the record up to ``last``: ``served`` forecasts and ``verdicts``."""
    forecast = served[-1]
    await expect(page.locator("#last-close-time")).to_have_text(shown(last.close_time))
    close = await page.locator("#last-close").text_content()
    assert float((close or "").replace(",", "")) == pytest.approx(last.close, rel=1e-5)
    await expect(page.locator("#forecast-time")).to_have_text(shown(forecast.target_time))
    band = (await page.locator("#band-80").text_content() or "").replace(",", "").split(" – ")
    assert forecast.interval_80 is not None
    expected = [forecast.interval_80.lower, forecast.interval_80.upper]
    assert [float(edge) for edge in band] == pytest.approx(expected, rel=1e-5)
    await expect(page.locator("#forecast-gate")).to_have_text("open")
    # The scores are read at most every 15 s after a verdict.
    await expect(page.locator("#verdict-count")).to_have_text(
        f"{sum(v.role == 'champion' for v in verdicts)} verdicts of {CHAMPION.model} "
        "in the last 30 days",
        timeout=20_000,
    )
    rows = page.locator("#verdicts tbody tr")
    await expect(rows).to_have_count(20)
    await expect(rows.first.locator("td").first).to_have_text(shown(last.close_time))
    await expect(page.locator("#gate dd.open")).to_have_text("open")
    history = page.locator("#history tbody tr")
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text("gate_opened")
    calibrated = [v for v in verdicts if v.role == "champion" and v.went_up is not None]
    bins = await page.locator("#calibration tbody tr").all_inner_texts()
    assert sum(int(row.split("\t")[1]) for row in bins) == len(calibrated)
    scorecards = page.locator("#scorecards tbody tr")
    await expect(scorecards).to_have_count(2)
    for chart in CHARTS:
        assert await page.evaluate(COLOURED, chart) > 0, f"{chart} drew no series"
