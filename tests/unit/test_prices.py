import math

import pytest
from pydantic import TypeAdapter, ValidationError

from cryptocast_common.prices import (
    NEGATIVE_VOLUME,
    NON_POSITIVE_PRICE,
    NOT_A_NUMBER,
    NOT_BRACKETING,
    Price,
    brackets,
    is_price,
    ohlcv_problem,
    value_problem,
)


@pytest.mark.parametrize("value", [1e-9, 1.0, 65000.5, 1e300])
def test_a_price_is_a_finite_number_above_zero(value: float) -> None:
    assert is_price(value)
    assert TypeAdapter(Price).validate_python(value) == value


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_zero_negative_and_non_finite_are_no_price_for_events_either(value: float) -> None:
    assert not is_price(value)
    with pytest.raises(ValidationError):
        TypeAdapter(Price).validate_python(value)


def test_high_and_low_bracket_open_and_close() -> None:
    assert brackets(100.0, 105.0, 95.0, 101.0)
    assert brackets(100.0, 100.0, 100.0, 100.0)
    assert not brackets(100.0, 102.0, 95.0, 103.0)
    assert not brackets(100.0, 105.0, 101.0, 102.0)


@pytest.mark.parametrize(
    "values, problem",
    [
        ((100.0, 105.0, 95.0, 101.0, 0.0), None),
        ((100.0, 105.0, 95.0, math.nan, 1.0), NOT_A_NUMBER),
        ((100.0, 105.0, 95.0, 101.0, math.inf), NOT_A_NUMBER),
        ((100.0, 105.0, -1.0, 101.0, 1.0), NON_POSITIVE_PRICE),
        ((0.0, 105.0, 95.0, 101.0, 1.0), NON_POSITIVE_PRICE),
        ((100.0, 105.0, 95.0, 101.0, -5.0), NEGATIVE_VOLUME),
        ((100.0, 102.0, 95.0, 103.0, 1.0), NOT_BRACKETING),
    ],
)
def test_a_candle_s_values_are_checked_in_this_order(
    values: tuple[float, float, float, float, float], problem: str | None
) -> None:
    assert ohlcv_problem(*values) == problem


def test_the_values_alone_leave_the_bracketing_out() -> None:
    assert value_problem(100.0, 102.0, 95.0, 103.0, 1.0) is None
    assert value_problem(100.0, 105.0, 95.0, 101.0, -5.0) == NEGATIVE_VOLUME
