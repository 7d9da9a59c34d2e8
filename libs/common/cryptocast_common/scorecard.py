"""One scorecard for a set of verdicts, shared by the gateway's accuracy API and the backtest.

Point forecast: the shared metrics (``metrics.forecast_metrics``), where ``mase`` is the MAE
relative to the no-change forecast on the same candles (below 1 is better than "the price
stays where it is"), its moving-block bootstrap 95% interval, and the Diebold-Mariano
statistic of the absolute errors against no change's (positive means worse; above 1.96 is
significantly worse at 5%, below -1.96 significantly better). Directional accuracy
comes with the number judged, the ties, the share of up candles and a Wilson interval.
"within 2%" is kept for the original API; it is no measure of skill (no change scores well
on it in calm markets).

Distribution (verdicts of version-2 predictions only): coverage of the 80% and 95%
intervals, their mean widths in percent of the last close, the Brier score of ``p_up`` and
that of the base rate (before each candle, the share of up candles among the earlier ones).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from cryptocast_common.events import Verification
from cryptocast_common.metrics import forecast_metrics
from cryptocast_common.significance import (
    block_bootstrap_mae_ratio,
    diebold_mariano,
    running_base_rate,
    wilson_interval,
)


class Scorecard(BaseModel):
    n: int = Field(description="Verdicts scored")
    mae: float | None = Field(description="Mean absolute error, price units")
    rmse: float | None
    mape: float | None = Field(description="Mean absolute percentage error")
    mase: float | None = Field(
        description="MAE relative to the no-change forecast on the "
        "same candles; below 1 is better than no change"
    )
    mase_ci: list[float] | None = Field(description="Moving-block bootstrap 95% interval of mase")
    dm_vs_naive: float | None = Field(
        description="Diebold-Mariano statistic of absolute "
        "errors minus no change's (Newey-West "
        "variance); > 1.96 significantly worse, < -1.96 "
        "significantly better, at 5%"
    )
    beats_naive: bool = Field(description="dm_vs_naive < -1.96")
    directional_accuracy: float | None = Field(
        description="Share of correct directions among the judged (ties left out)"
    )
    directional_accuracy_ci: list[float] | None = Field(description="Wilson 95% interval")
    directions_judged: int
    direction_ties: int
    up_share: float | None = Field(description="Share of candles that closed up")
    within_2pct: float | None = Field(
        description="Share within 2% of the actual close; "
        "kept for the original API, not a skill measure"
    )
    coverage_80: float | None = None
    coverage_95: float | None = None
    width_80: float | None = Field(
        default=None, description="Mean width of the 80% interval, percent of the last close"
    )
    width_95: float | None = None
    brier: float | None = Field(default=None, description="Brier score of p_up")
    brier_base_rate: float | None = Field(
        default=None,
        description="Brier score of the base rate: the share of up candles before each one",
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def scorecard(verdicts: Sequence[Verification], resamples: int = 2000) -> Scorecard:
    """Verdicts of one model, in target-time order."""
    ordered = sorted(verdicts, key=lambda v: v.target_time)
    metrics = forecast_metrics(
        [v.predicted_close for v in ordered],
        [v.actual_close for v in ordered],
        [v.based_on_close for v in ordered],
    )
    judged = [v.direction_correct for v in ordered if v.direction_correct is not None]
    moved = [v.went_up for v in ordered if v.went_up is not None]
    # Price units, as MAE and its ratio are: the interval then holds the point estimate.
    errors = [abs(v.predicted_close - v.actual_close) for v in ordered]
    naive = [abs(v.based_on_close - v.actual_close) for v in ordered]
    dm = diebold_mariano(errors, naive).statistic if len(ordered) >= 10 else None
    ci = (
        block_bootstrap_mae_ratio(errors, naive, resamples=resamples)
        if len(ordered) >= 10 and sum(naive) > 0
        else None
    )
    distribution = [v for v in ordered if v.inside_80 is not None]
    scored = [v for v in distribution if v.brier is not None]
    base = running_base_rate([bool(v.went_up) for v in scored])
    return Scorecard(
        **metrics,
        mase_ci=None if ci is None else [ci.lower, ci.upper],
        dm_vs_naive=dm,
        beats_naive=dm is not None and dm < -1.96,
        directional_accuracy_ci=list(wilson_interval(sum(judged), len(judged))) if judged else None,
        directions_judged=len(judged),
        up_share=_mean([float(up) for up in moved]),
        coverage_80=_mean([float(bool(v.inside_80)) for v in distribution]),
        coverage_95=_mean([float(bool(v.inside_95)) for v in distribution]),
        width_80=_mean([v.width_80_pct or 0.0 for v in distribution]),
        width_95=_mean([v.width_95_pct or 0.0 for v in distribution]),
        brier=_mean([v.brier or 0.0 for v in scored]),
        brier_base_rate=_mean(
            [(rate - float(bool(v.went_up))) ** 2 for rate, v in zip(base, scored, strict=True)]
        ),
    )
