"""Significance of forecast skill: pure Python, shared by the evaluator, verifier and gateway.

- ``diebold_mariano``: is forecast A's loss different from forecast B's? The loss differential
  ``d_t = loss_a_t - loss_b_t`` (here absolute errors of the model minus the naive
  forecast's), its mean over its long-run standard error. The long-run variance is
  Newey-West's: autocovariances up to ``lags`` with Bartlett weights ``1 - k / (lags + 1)``
  (never negative). Absolute errors cluster with volatility, so even one-step loss
  differentials are autocorrelated; the default lag count is Newey and West's rule
  ``floor(4 (n / 100) ** (2 / 9))`` (7 for a year of 4-hour candles). The
  Harvey-Leybourne-Newbold small-sample correction for a horizon ``h`` multiplies the
  statistic by ``sqrt((n + 1 - 2h + h (h - 1) / n) / n)`` and compares it with Student's t
  with ``n - 1`` degrees of freedom; for one-step forecasts the factor is
  ``sqrt((n - 1) / n)`` and the t reference is what matters on short samples. A positive
  statistic means forecast A has the larger loss (is worse); ``|DM| > 1.96`` is
  significant at 5% two-sided on long samples.
- ``block_bootstrap_mae_ratio``: a moving-block bootstrap confidence interval for
  MAE(model) / MAE(naive) over the same points: blocks of consecutive points keep the
  volatility clustering that an i.i.d. bootstrap would destroy. Seeded, so deterministic.
- ``brier_score`` and ``running_base_rate``: the Brier score of probability forecasts of a
  binary outcome, and the no-skill reference: before each outcome, the share of ups among
  the outcomes seen so far (no look-ahead).
- ``wilson_interval``: the Wilson score interval for a proportion such as directional
  accuracy; unlike the normal approximation it stays inside [0, 1] and is honest near 0.5
  on small counts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True)
class DieboldMariano:
    statistic: float  # > 0: the first forecast's loss is larger (it is worse)
    p_value: float  # two-sided
    n: int
    lags: int
    mean_difference: float  # mean of loss_a - loss_b


def newey_west_lags(n: int) -> int:
    """Newey and West's (1994) rule of thumb: floor(4 (n / 100) ** (2 / 9))."""
    return int(4 * (n / 100) ** (2 / 9)) if n > 0 else 0


def long_run_variance(values: Sequence[float], lags: int) -> float:
    """Newey-West (Bartlett kernel) long-run variance of a series around its mean."""
    n = len(values)
    mean = sum(values) / n
    centred = [v - mean for v in values]
    variance = sum(c * c for c in centred) / n
    for k in range(1, min(lags, n - 1) + 1):
        gamma = sum(centred[t] * centred[t - k] for t in range(k, n)) / n
        variance += 2 * (1 - k / (lags + 1)) * gamma
    return variance


def diebold_mariano(
    loss_a: Sequence[float],
    loss_b: Sequence[float],
    lags: int | None = None,
    horizon: int = 1,
    small_sample: bool = True,
) -> DieboldMariano:
    """Diebold-Mariano test of equal expected loss, HAC variance, optional HLN correction.

    Identical losses give a statistic of 0 and a p-value of 1 (no evidence either way)."""
    if len(loss_a) != len(loss_b):
        raise ValueError("loss_a and loss_b must have the same length")
    n = len(loss_a)
    if n < 2:
        raise ValueError("the Diebold-Mariano test needs at least two forecasts")
    lags = newey_west_lags(n) if lags is None else lags
    differences = [a - b for a, b in zip(loss_a, loss_b, strict=True)]
    mean = sum(differences) / n
    variance = long_run_variance(differences, lags)
    if variance <= 0:
        statistic = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        statistic = mean / math.sqrt(variance / n)
    if small_sample and math.isfinite(statistic):
        h = horizon
        statistic *= math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
        p_value = 2 * student_t_sf(abs(statistic), n - 1)
    else:
        p_value = 2 * (1 - _NORMAL.cdf(abs(statistic))) if math.isfinite(statistic) else 0.0
    return DieboldMariano(statistic, min(1.0, p_value), n, lags, mean)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1 - tail


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (NumPy's default, Hyndman-Fan 7)."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True)
class RatioInterval:
    ratio: float  # MAE(model) / MAE(naive) on all points
    lower: float
    upper: float
    block: int
    resamples: int


def default_block(n: int) -> int:
    """Block length growing like n ** (1/3), the usual rate for a variance-type statistic."""
    return max(1, min(n, round(math.cbrt(n))))


def block_bootstrap_mae_ratio(
    model_errors: Sequence[float],
    naive_errors: Sequence[float],
    block: int | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioInterval:
    """Moving-block bootstrap percentile interval of sum|model| / sum|naive|.

    Each resample concatenates ``ceil(n / block)`` blocks of ``block`` consecutive points,
    each starting uniformly at one of the ``n - block + 1`` possible positions, cut to
    ``n`` points; the model and naive errors of a point always travel together."""
    if len(model_errors) != len(naive_errors):
        raise ValueError("model_errors and naive_errors must have the same length")
    n = len(model_errors)
    if n == 0:
        raise ValueError("no errors to resample")
    block = default_block(n) if block is None else max(1, min(block, n))
    model_sum, naive_sum = [0.0], [0.0]
    for m, v in zip(model_errors, naive_errors, strict=True):
        model_sum.append(model_sum[-1] + abs(m))
        naive_sum.append(naive_sum[-1] + abs(v))
    ratio = model_sum[-1] / naive_sum[-1] if naive_sum[-1] > 0 else math.nan
    full, rest = divmod(n, block)
    starts = n - block + 1
    rng = random.Random(seed)
    draw = rng.randrange
    ratios = []
    for _ in range(resamples):
        m_total = v_total = 0.0
        for _ in range(full):
            s = draw(starts)
            m_total += model_sum[s + block] - model_sum[s]
            v_total += naive_sum[s + block] - naive_sum[s]
        if rest:
            s = draw(starts)
            m_total += model_sum[s + rest] - model_sum[s]
            v_total += naive_sum[s + rest] - naive_sum[s]
        if v_total > 0:
            ratios.append(m_total / v_total)
    ratios.sort()
    if not ratios:
        return RatioInterval(ratio, math.nan, math.nan, block, resamples)
    alpha = (1 - confidence) / 2
    return RatioInterval(
        ratio, _quantile(ratios, alpha), _quantile(ratios, 1 - alpha), block, resamples
    )


def brier_score(probabilities: Sequence[float], outcomes: Sequence[bool | int]) -> float:
    """Mean squared difference between the forecast probability and the 0/1 outcome."""
    if len(probabilities) != len(outcomes) or not outcomes:
        raise ValueError("probabilities and outcomes must be non-empty and of equal length")
    return sum((p - float(o)) ** 2 for p, o in zip(probabilities, outcomes, strict=True)) / len(
        outcomes
    )


def running_base_rate(
    outcomes: Sequence[bool | int],
    prior_ups: float = 0.0,
    prior_count: float = 0.0,
    first: float = 0.5,
) -> list[float]:
    """Before each outcome, the share of ups so far (``first`` when nothing is known yet).

    ``prior_ups`` of ``prior_count`` earlier outcomes (say, the history before a test
    period) count as seen; nothing at or after an outcome ever enters its own forecast."""
    ups, count, rates = prior_ups, prior_count, []
    for outcome in outcomes:
        rates.append(ups / count if count > 0 else first)
        ups += float(outcome)
        count += 1
    return rates


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
