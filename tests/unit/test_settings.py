"""Settings that several services read alike: the intervals served, and each one's champion."""

import pytest
from pydantic import ValidationError

from cryptocast_common.settings import CommonSettings
from cryptocast_inference.settings import SHIPPED_MODEL, InferenceSettings


def test_intervals_default_to_the_one_the_original_endpoints_serve() -> None:
    common = CommonSettings()
    assert (common.interval, common.intervals) == ("4h", ["4h"])
    assert common.routing_keys("candle") == ["candle.*.4h"]


def test_several_intervals_include_the_original_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOCAST_INTERVALS", "4h, 1d,4h")
    common = CommonSettings()
    assert common.intervals == ["4h", "1d"]
    assert common.routing_keys("candle", "prediction") == [
        "candle.*.4h",
        "candle.*.1d",
        "prediction.*.4h",
        "prediction.*.1d",
    ]
    monkeypatch.setenv("CRYPTOCAST_INTERVALS", "1h,1d")
    with pytest.raises(ValidationError, match="CRYPTOCAST_INTERVAL '4h' must be one of"):
        CommonSettings()
    monkeypatch.setenv("CRYPTOCAST_INTERVALS", "4h,3x")
    with pytest.raises(ValidationError, match="not of the form"):
        CommonSettings()


def test_each_interval_has_its_champion_and_no_change_serves_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRYPTOCAST_INFERENCE_INTERVAL_MODELS", "1d=dist-1d@1, 1h=naive")
    settings = InferenceSettings()
    assert settings.champion_for("4h", primary="4h") == SHIPPED_MODEL
    assert settings.champion_for("1d", primary="4h") == "dist-1d@1"
    assert settings.champion_for("1w", primary="4h") == "naive"
    monkeypatch.setenv("CRYPTOCAST_INFERENCE_INTERVAL_MODELS", "1d")
    with pytest.raises(ValidationError, match="expected INTERVAL=name@version"):
        InferenceSettings()
