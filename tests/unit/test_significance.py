"""Significance helpers against values worked out by hand (the arithmetic is in the comments)."""

import math

import pytest

from cryptocast_common.significance import (
    block_bootstrap_mae_ratio,
    brier_score,
    diebold_mariano,
    long_run_variance,
    newey_west_lags,
    running_base_rate,
    student_t_sf,
    wilson_interval,
)


def test_long_run_variance_by_hand() -> None:
    # d = 1, 2, 3, 4: mean 2.5, centred -1.5, -0.5, 0.5, 1.5
    # gamma0 = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    # gamma1 = ((-0.5)(-1.5) + (0.5)(-0.5) + (1.5)(0.5)) / 4 = 1.25 / 4 = 0.3125
    # one lag, Bartlett weight 1 - 1/2: 1.25 + 2 * 0.5 * 0.3125 = 1.5625
    assert long_run_variance([1, 2, 3, 4], 0) == pytest.approx(1.25)
    assert long_run_variance([1, 2, 3, 4], 1) == pytest.approx(1.5625)


def test_diebold_mariano_by_hand() -> None:
    model, naive = [1, 2, 3, 4], [0, 0, 0, 0]  # d = 1, 2, 3, 4: the model is worse
    # No lags, no correction: 2.5 / sqrt(1.25 / 4) = sqrt(20) = 4.4721
    plain = diebold_mariano(model, naive, lags=0, small_sample=False)
    assert plain.statistic == pytest.approx(math.sqrt(20))
    assert plain.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(math.sqrt(10)))))
    # One lag: 2.5 / sqrt(1.5625 / 4) = 2.5 / 0.625 = 4.0; HLN with h = 1 multiplies by
    # sqrt(3 / 4): 2 sqrt(3) = 3.4641. Student t with 3 df has the closed-form cdf
    # 1/2 + (1/pi) (x / (1 + x^2) + atan x) with x = t / sqrt(3) = 2:
    # 1/2 + (0.4 + 1.1071487) / pi = 0.9797403, so the two-sided p-value is 0.040519.
    hln = diebold_mariano(model, naive, lags=1)
    assert hln.statistic == pytest.approx(2 * math.sqrt(3))
    assert hln.p_value == pytest.approx(2 * (0.5 - (0.4 + math.atan(2)) / math.pi))
    assert hln.p_value == pytest.approx(0.040519, abs=1e-6)
    assert hln.mean_difference == 2.5 and hln.lags == 1 and hln.n == 4
    # Swapping the forecasts flips the sign: negative means the first one is better.
    assert diebold_mariano(naive, model, lags=1).statistic == pytest.approx(-2 * math.sqrt(3))


def test_diebold_mariano_of_identical_forecasts_says_nothing() -> None:
    result = diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert result.statistic == 0 and result.p_value == 1


def test_newey_west_lag_rule() -> None:
    # floor(4 * (2190 / 100) ** (2 / 9)) = floor(4 * 1.9855) = 7
    assert newey_west_lags(2190) == 7
    assert newey_west_lags(100) == 4


def test_student_t_tails_by_hand() -> None:
    assert student_t_sf(1.0, 1) == pytest.approx(0.25)  # Cauchy: 1/2 - atan(1)/pi
    # 2 df: 1/2 - t / (2 sqrt(2 + t^2)) = 0.5 - 2 / (2 sqrt 6) = 0.091752
    assert student_t_sf(2.0, 2) == pytest.approx(0.5 - 1 / math.sqrt(6))
    assert student_t_sf(-2.0, 2) == pytest.approx(0.5 + 1 / math.sqrt(6))
    assert student_t_sf(1.959964, 1_000_000) == pytest.approx(0.025, abs=1e-5)


def test_block_bootstrap_with_one_block_reproduces_the_sample() -> None:
    # Blocks as long as the sample: every resample is the sample itself, ratio 6 / 6.
    result = block_bootstrap_mae_ratio([1, 1, 4], [2, 2, 2], block=3, resamples=50)
    assert (result.ratio, result.lower, result.upper) == (1.0, 1.0, 1.0)


def test_block_bootstrap_of_single_points_by_hand() -> None:
    # Blocks of one point: each resample takes two points, each |1| or |3| against naive
    # errors of 1 and 1, so the ratio is 1 (p = 1/4), 2 (p = 1/2) or 3 (p = 1/4): the 95%
    # percentile interval of many resamples is [1, 3] around the sample's ratio 4 / 2 = 2.
    result = block_bootstrap_mae_ratio([1, -3], [1, 1], block=1, resamples=400, seed=3)
    assert result.ratio == 2 and result.lower == 1 and result.upper == 3
    again = block_bootstrap_mae_ratio([1, -3], [1, 1], block=1, resamples=400, seed=3)
    assert again == result  # seeded: deterministic


def test_brier_and_running_base_rate_by_hand() -> None:
    # (0.8 - 1)^2 = 0.04, (0.3 - 0)^2 = 0.09: mean 0.065
    assert brier_score([0.8, 0.3], [True, False]) == pytest.approx(0.065)
    outcomes = [1, 0, 1, 1]
    # before each: nothing seen (0.5), 1/1, 1/2, 2/3
    assert running_base_rate(outcomes) == pytest.approx([0.5, 1.0, 0.5, 2 / 3])
    # with 1 up in 2 earlier outcomes: 1/2, 2/3, 2/4, 3/5
    assert running_base_rate(outcomes, 1, 2) == pytest.approx([0.5, 2 / 3, 0.5, 0.6])
    # Brier of the base rate: (0.5-1)^2 + (1-0)^2 + (0.5-1)^2 + (2/3-1)^2 = 0.25+1+0.25+1/9
    assert brier_score(running_base_rate(outcomes), outcomes) == pytest.approx(
        (0.25 + 1 + 0.25 + 1 / 9) / 4
    )


def test_wilson_interval_by_hand() -> None:
    # 8 of 10, z = 1.96: z^2 = 3.8415, denominator 1 + 0.38415 = 1.38415,
    # centre (0.8 + 0.19207) / 1.38415 = 0.71675,
    # half 1.96 sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658: (0.4902, 0.9433)
    lower, upper = wilson_interval(8, 10)
    assert lower == pytest.approx(0.4902, abs=1e-4) and upper == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 5)[0] == pytest.approx(0.0, abs=1e-12)
