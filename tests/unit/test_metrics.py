import math

import pytest

from cryptocast_common.metrics import direction_correct, error_pct, forecast_metrics


def test_metrics_match_hand_computed_values() -> None:
    previous = [100.0, 100.0, 100.0, 100.0]
    actual = [110.0, 90.0, 100.0, 101.0]
    predicted = [105.0, 95.0, 102.0, 100.0]
    m = forecast_metrics(predicted, actual, previous)
    # errors 5, 5, 2, 1; naive errors 10, 10, 0, 1
    assert m["n"] == 4
    assert m["mae"] == pytest.approx(13 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((25 + 25 + 4 + 1) / 4))
    assert m["mape"] == pytest.approx((5 / 110 + 5 / 90 + 2 / 100 + 1 / 101) * 100 / 4)
    assert m["mase"] == pytest.approx((13 / 4) / (21 / 4))
    # up/up right, down/down right, up/flat tie, flat/up tie
    assert m["directional_accuracy"] == 1.0
    assert m["direction_ties"] == 2
    # within 2%: 2/100 yes, 1/101 yes, 5/110 and 5/90 no
    assert m["within_2pct"] == 0.5


def test_wrong_direction_and_naive_scores() -> None:
    m = forecast_metrics([99.0, 101.0], [101.0, 102.0], [100.0, 100.0])
    assert m["directional_accuracy"] == 0.5
    naive = forecast_metrics([100.0, 100.0], [101.0, 102.0], [100.0, 100.0])
    assert naive["mase"] == 1.0
    assert naive["directional_accuracy"] is None and naive["direction_ties"] == 2


def test_empty_and_degenerate_inputs() -> None:
    assert forecast_metrics([], [], [])["mae"] is None
    flat = forecast_metrics([101.0], [100.0], [100.0])
    assert flat["mase"] is None  # the naive forecast was perfect: no scale to divide by
    with pytest.raises(ValueError, match="same length"):
        forecast_metrics([1.0], [1.0, 2.0], [1.0])


def test_single_verdict_helpers() -> None:
    assert error_pct(98.0, 100.0) == pytest.approx(2.0)
    assert direction_correct(101.0, 102.0, 100.0) is True
    assert direction_correct(99.0, 102.0, 100.0) is False
    assert direction_correct(100.0, 102.0, 100.0) is None
