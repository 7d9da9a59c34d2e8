"""Live skill over time, for the dashboard: per model, the MAE ratio to no change over a
trailing window of verdicts at moments along the record, with its bootstrap interval and
interval coverage (the shared scorecard), and the calibration of ``p_up``.

The bootstraps are CPU-bound (``points`` scorecards of 400 resamples per model): they run in
a worker thread, never on the event loop that serves every request and stream, and an
answer is kept per (symbol, trailing, points, newest verdicts) so that every tab asking
again before the next verdict costs one small read."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import datetime
from itertools import pairwise
from operator import itemgetter
from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cryptocast_common.events import Prediction, Verification
from cryptocast_common.scorecard import scorecard
from cryptocast_gateway.accuracy import RESAMPLES
from cryptocast_gateway.api.deps import State
from cryptocast_gateway.api.routes.v1 import NOT_FOUND, Symbol
from cryptocast_gateway.store import EventStore

router = APIRouter(prefix="/api/v1", tags=["v1"])
READ = 2000  # newest verdicts (and predictions, for their p_up) read per request
MIN_VERDICTS = 10  # the scorecard's least for a bootstrap interval
CALIBRATION_BINS = 10
MAX_TRAILING = 500  # verdicts per window: a bootstrap of at most this many
MAX_POINTS = 50  # scorecards per model per answer
CACHED = 64  # answers kept per store, the least recently asked dropped first
# The newest verdicts whose ids key an answer: more than the models judged at one target
# time, so that one model's verdict stored after another's at the same time is seen too.
NEWEST = 32
CacheKey = tuple[str, int, int, tuple[str, ...]]  # symbol, trailing, points, newest verdicts
# Per store (so two gateways in one process never share answers): the answer, or the one
# being computed, which concurrent requests for the same key await together.
_cache: WeakKeyDictionary[EventStore, OrderedDict[CacheKey, asyncio.Future[SkillHistory]]] = (
    WeakKeyDictionary()
)


class SkillPoint(BaseModel):
    time: datetime = Field(description="Target time of the newest verdict in the window")
    n: int = Field(description="Verdicts in the trailing window")
    mae_ratio: float | None = Field(description="MAE over no change's on the same candles")
    mae_ratio_ci: list[float] | None = Field(description="Moving-block bootstrap 95% interval")
    coverage_80: float | None
    coverage_95: float | None


class CalibrationBin(BaseModel):
    n: int
    mean_p_up: float = Field(description="Mean forecast probability of an up candle")
    up_share: float = Field(description="Share of those candles that closed up")


class ModelSkillHistory(BaseModel):
    over_time: list[SkillPoint]
    calibration: list[CalibrationBin] = Field(
        description="Verdicts with a p_up, sorted by it and cut into bins of about equal "
        "count (equal forecasts in the same bin)"
    )


class SkillHistory(BaseModel):
    symbol: str
    interval: str
    trailing: int
    models: dict[str, ModelSkillHistory]


def over_time(verdicts: list[Verification], trailing: int, points: int) -> list[SkillPoint]:
    """The scorecard of the ``trailing`` verdicts up to each of ``points`` evenly spaced
    ends, oldest first; ``verdicts`` in target-time order."""
    if len(verdicts) < MIN_VERDICTS:
        return []
    span = len(verdicts) - MIN_VERDICTS
    ends = sorted({MIN_VERDICTS + round(span * k / max(points - 1, 1)) for k in range(points)})
    found = []
    for end in ends:
        window = verdicts[max(0, end - trailing) : end]
        card = scorecard(window, RESAMPLES)
        found.append(
            SkillPoint(
                time=window[-1].target_time,
                n=card.n,
                mae_ratio=card.mase,
                mae_ratio_ci=card.mase_ci,
                coverage_80=card.coverage_80,
                coverage_95=card.coverage_95,
            )
        )
    return found


def calibration(
    verdicts: list[Verification], p_up: dict[str, float], bins: int = CALIBRATION_BINS
) -> list[CalibrationBin]:
    """Reliability of ``p_up`` (by prediction id): forecast against observed frequency."""
    pairs = sorted(
        (
            (p_up[v.prediction_id], float(v.went_up))
            for v in verdicts
            if v.went_up is not None and v.prediction_id in p_up
        ),
        key=itemgetter(0),
    )
    cuts = {0, len(pairs)}
    for k in range(1, bins):
        cut = round(len(pairs) * k / bins)
        while 0 < cut < len(pairs) and pairs[cut - 1][0] == pairs[cut][0]:
            cut += 1  # equal forecasts share a bin, whatever their outcomes
        cuts.add(cut)
    groups = [pairs[low:high] for low, high in pairwise(sorted(cuts)) if high > low]
    return [
        CalibrationBin(
            n=len(group),
            mean_p_up=sum(p for p, _ in group) / len(group),
            up_share=sum(up for _, up in group) / len(group),
        )
        for group in groups
    ]


def skill_models(
    verdicts: list[Verification], p_up: dict[str, float], trailing: int, points: int
) -> dict[str, ModelSkillHistory]:
    """The CPU-bound part: each model's skill over time and calibration; ``verdicts`` in
    target-time order."""
    models = {}
    for model in sorted({str(v.model) for v in verdicts}):
        mine = [v for v in verdicts if str(v.model) == model]
        models[model] = ModelSkillHistory(
            over_time=over_time(mine, trailing, points), calibration=calibration(mine, p_up)
        )
    return models


async def compute(
    store: EventStore, symbol: str, interval: str, trailing: int, points: int
) -> SkillHistory:
    found = await store.page("verifications", symbol, interval, None, None, None, READ)
    verdicts = sorted(
        (v for v in found if isinstance(v, Verification)), key=lambda v: v.target_time
    )
    predictions = await store.page("predictions", symbol, interval, None, None, None, READ)
    p_up = {
        p.event_id: p.p_up for p in predictions if isinstance(p, Prediction) and p.p_up is not None
    }
    models = await run_in_threadpool(skill_models, verdicts, p_up, trailing, points)
    return SkillHistory(symbol=symbol, interval=interval, trailing=trailing, models=models)


@router.get("/skill/{symbol}", response_model=SkillHistory, responses=NOT_FOUND)
async def skill_history(
    symbol: Symbol,
    state: State,
    trailing: Annotated[
        int,
        Query(
            ge=MIN_VERDICTS,
            le=MAX_TRAILING,
            description=f"Verdicts per window, {MIN_VERDICTS} to {MAX_TRAILING} (else 400)",
        ),
    ] = 120,
    points: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_POINTS,
            description=f"Moments per model, 1 to {MAX_POINTS} (else 400)",
        ),
    ] = 30,
) -> SkillHistory:
    """Per model@version: the MAE ratio to no change over the last ``trailing`` verdicts
    at up to ``points`` moments of its recent record, with its 95% interval and the
    coverage of the 80% and 95% intervals; and the calibration of ``p_up``. Computed in a
    worker thread and kept until the coin's next verdict."""
    store, interval = state.store, state.common.interval
    newest = await store.page("verifications", symbol, interval, None, None, None, NEWEST)
    key = (symbol, trailing, points, tuple(v.event_id for v in newest))
    answers = _cache.setdefault(store, OrderedDict())
    answer = answers.get(key)
    if answer is None or (answer.done() and (answer.cancelled() or answer.exception())):
        answer = asyncio.ensure_future(compute(store, symbol, interval, trailing, points))
        answers[key] = answer
        while len(answers) > CACHED:
            answers.popitem(last=False)
    answers.move_to_end(key)
    # Shielded: a client that goes away cancels its wait, not the answer others await.
    return await asyncio.shield(answer)
