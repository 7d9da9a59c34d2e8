import pytest

from cryptocast_verifier.handlers import VerifierDeps, handle
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.store import InMemoryVerifierStore
from tests.factories import candle, prediction


def test_scoring_by_hand() -> None:
    v = verify(prediction(0, base=100.0, predicted=103.0), actual_close=102.0, tolerance_pct=2.0)
    assert v.error_pct == pytest.approx(1 / 102 * 100)
    assert v.within_tolerance is True
    assert v.direction_correct is True
    assert v.naive_error_pct == pytest.approx(2 / 102 * 100)
    assert v.event_id == f"verification:{prediction(0).event_id}"
    wrong = verify(prediction(0, base=100.0, predicted=97.0), actual_close=102.0,
                   tolerance_pct=2.0)
    assert wrong.within_tolerance is False and wrong.direction_correct is False


def test_a_tie_says_nothing_about_direction() -> None:
    naive = verify(prediction(0, base=100.0, predicted=100.0), 101.0, 2.0)
    flat = verify(prediction(0, base=100.0, predicted=101.0), 100.0, 2.0)
    assert naive.direction_correct is None and flat.direction_correct is None


def deps() -> VerifierDeps:
    return VerifierDeps(InMemoryVerifierStore(), tolerance_pct=2.0, retention_candles=10)


async def test_prediction_waits_for_its_target_candle() -> None:
    d = deps()
    assert await handle([prediction(0, base=100.0, predicted=101.0)], d) == []
    assert await handle([candle(0)], d) == []  # not the target
    [v] = await handle([candle(1, close=102.0)], d)
    assert v.actual_close == 102.0 and v.prediction_id == prediction(0).event_id


async def test_a_late_prediction_is_verified_at_once() -> None:
    d = deps()
    await handle([candle(1, close=99.0)], d)
    [v] = await handle([prediction(0)], d)
    assert v.actual_close == 99.0


async def test_redelivery_yields_the_same_verification() -> None:
    d = deps()
    await handle([prediction(0)], d)
    first = await handle([candle(1, close=99.0)], d)
    again = await handle([candle(1, close=99.0)], d)
    assert first == again


async def test_old_entries_age_out() -> None:
    d = deps()
    await handle([prediction(0)], d)
    await handle([candle(30)], d)
    assert await handle([candle(1)], d) == []
