"""Features, CSV checks, the evaluator and the shipped artifact, all without TensorFlow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cryptocast_common.events import Candle
from cryptocast_common.timestamps import parse_time
from cryptocast_inference.artifacts import ArtifactError, artifact_dir
from cryptocast_inference.features import FEATURES, WARMUP, compute_features
from cryptocast_inference.handlers import InferenceDeps, handle_candles
from cryptocast_inference.lstm import LstmPredictor
from cryptocast_inference.registry import build_predictor, lineup_of
from cryptocast_inference.series import SeriesError, read_series
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_inference.windows import CandleWindows
from cryptocast_trainer.evaluate import main as evaluate_main
from cryptocast_trainer.samples import make_samples
from tests.factories import candle

SETTINGS = InferenceSettings(model=LSTM_MODEL)
SHIPPED = artifact_dir(SETTINGS.artifacts_dir, SETTINGS.model)
BUNDLE = Path(__file__).parents[2] / "services/ingestor/cryptocast_ingestor/data"
HEADER = "timestamp,open,high,low,close,volume\n"


def random_walk(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    return np.stack([open_, high, low, close, rng.uniform(10, 20, n)], axis=1)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows))
    return path


def candle_rows(n: int, start: int = 1_785_542_400, step: int = 14_400) -> list[str]:
    ohlcv = random_walk(n)
    return [f"{start + i * step}," + ",".join(f"{v:.6f}" for v in ohlcv[i]) for i in range(n)]


def test_features_by_hand_and_causal() -> None:
    ohlcv = random_walk(40)
    features = compute_features(ohlcv)
    assert features.shape == (40 - WARMUP, len(FEATURES))
    t = 20
    row = features[t - WARMUP]
    closes = ohlcv[:, 3]
    returns = np.diff(np.log(closes))
    assert row[FEATURES.index("log_return")] == pytest.approx(np.log(closes[t] / closes[t - 1]))
    assert row[FEATURES.index("log_range")] == pytest.approx(np.log(ohlcv[t, 1] / ohlcv[t, 2]))
    assert row[FEATURES.index("sma_gap_12")] == pytest.approx(
        np.log(closes[t] / closes[t - 11 : t + 1].mean())
    )
    assert row[FEATURES.index("volatility_12")] == pytest.approx(returns[t - 12 : t].std())
    gains = np.maximum(returns[t - 14 : t], 0).mean()
    losses = np.maximum(-returns[t - 14 : t], 0).mean()
    assert row[FEATURES.index("rsi_14")] == pytest.approx(gains / (gains + losses) - 0.5)
    # A later candle never changes an earlier feature; a batch equals its members.
    changed = ohlcv.copy()
    changed[t + 1 :] *= 3
    assert np.array_equal(compute_features(changed)[: t - WARMUP + 1], features[: t - WARMUP + 1])
    batch = np.stack([ohlcv[:26], ohlcv[10:36]])
    assert np.allclose(compute_features(batch)[1], features[10:22])


def test_flat_prices_give_finite_features() -> None:
    flat = np.tile([100.0, 100.0, 100.0, 100.0, 0.0], (30, 1))
    assert np.isfinite(compute_features(flat)).all()


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("2026-08-01T00:00:00Z", 1_785_542_400),
        ("2026-08-01 00:00:00", 1_785_542_400),
        ("2026-08-01T02:00:00+02:00", 1_785_542_400),
        ("1785542400", 1_785_542_400),
        ("1785542400000", 1_785_542_400),
    ],
)
def test_timestamps_in_every_accepted_form(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "rows, message",
    [
        (["1785542400,1,1,1,1"], "missing column"),
        (["1785556800,1,1,1,1,1", "1785542400,1,1,1,1,1"], ":3: timestamps are not in ascending"),
        (["1785542400,1,1,1,1,1", "1785542400,1,1,1,1,1"], ":3: duplicate timestamp"),
        (["1785542400,1,1,1,nan,1", "1785556800,1,1,1,1,1"], ":2: close is empty or not a number"),
        (["1785542400,1,1,1,,1", "1785556800,1,1,1,1,1"], ":2: close is empty or not a number"),
        (["1785542400,1,1,1,-1,1", "1785556800,1,1,1,1,1"], "prices must be positive"),
        (["yesterday,1,1,1,1,1", "1785556800,1,1,1,1,1"], ":2: unreadable value"),
        (["1785542400,1,1,1,1,1"], "1 rows; at least 2"),
    ],
)
def test_bad_csv_is_refused_with_the_reason(tmp_path: Path, rows: list[str], message: str) -> None:
    path = tmp_path / "bad.csv"
    if message == "missing column":
        path.write_text("timestamp,open,high,low,close\n" + rows[0] + "\n")
    else:
        write_csv(path, rows)
    with pytest.raises(SeriesError, match=message):
        read_series(path, "BTC")


def run_evaluator(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str | None, str]:
    """The evaluator's error message (None on success) and its stdout."""
    try:
        evaluate_main(list(args))
    except SystemExit as stop:  # sys.exit("message") prints it and exits with status 1
        assert isinstance(stop.code, str)
        return stop.code, capsys.readouterr().out
    return None, capsys.readouterr().out


def test_evaluator_prints_json_last_and_writes_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "coin.csv", candle_rows(80))
    error, out = run_evaluator(
        capsys, "--data", str(data), "--symbol", "abc", "--out", str(tmp_path / "report")
    )
    assert error is None
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {"model", "naive", "drift", "sma"}
    model = result["model"]
    assert (model["name"], model["version"]) == tuple(SETTINGS.model.split("@"))
    assert model["n"] == 80 - 12 - WARMUP
    assert set(model) >= {
        "mae",
        "rmse",
        "mape",
        "mase",
        "directional_accuracy",
        "direction_ties",
        "within_2pct",
    }
    assert result["naive"]["mase"] == 1.0
    assert (tmp_path / "report/evaluation-abc.md").read_text().count("| naive |") == 1
    assert (tmp_path / "report/evaluation-abc.png").stat().st_size > 0


@pytest.mark.parametrize(
    "rows, message",
    [
        (candle_rows(20), "20 rows; at least 27"),
        (candle_rows(40, step=3600), "candles are 1h apart"),
        ([r for i, r in enumerate(candle_rows(60)) if i % 20 != 19], "no run of 27 consecutive"),
    ],
)
def test_evaluator_refuses_unusable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[str], message: str
) -> None:
    data = write_csv(tmp_path / "coin.csv", rows)
    error, out = run_evaluator(
        capsys, "--data", str(data), "--symbol", "abc", "--out", str(tmp_path)
    )
    assert error is not None and message in error and "{" not in out


def test_evaluator_names_missing_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_csv(tmp_path / "coin.csv", candle_rows(40))
    error, _ = run_evaluator(
        capsys, "--data", str(data), "--symbol", "abc", "--model", "lstm-4h@nope"
    )
    assert error is not None and "no model artifact" in error and SETTINGS.model in error


def test_artifact_that_does_not_fit_the_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="window: artifact has 12, service uses 24"):
        build_predictor(InferenceSettings(model=LSTM_MODEL, window=24), "4h")
    with pytest.raises(ArtifactError, match="fitted on 4h candles; this deployment serves 1h"):
        build_predictor(SETTINGS, "1h")
    copy = tmp_path / "lstm-4h" / "edited"
    shutil.copytree(SHIPPED, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["features"] = metadata["features"][:-1]
    (copy / "metadata.json").write_text(json.dumps(metadata))
    edited = InferenceSettings(artifacts_dir=tmp_path, model="lstm-4h@edited")
    with pytest.raises(ArtifactError, match="features: artifact has"):
        build_predictor(edited, "4h")
    (copy / "scaler.json").write_text("{}")
    with pytest.raises(ArtifactError, match="does not match the hash"):
        build_predictor(edited, "4h")


def test_service_predictions_equal_the_evaluators(tmp_path: Path) -> None:
    """The serving path (candle events) and the evaluation path (CSV rows) agree."""
    series = read_series(BUNDLE / "coingecko/BTC_4h.csv.gz", "BTC")
    predictor = build_predictor(SETTINGS, "4h")
    assert isinstance(predictor, LstmPredictor) and predictor.window == 12 + WARMUP
    samples = make_samples(series, 12, "4h")
    expected = predictor.artifact.forecaster.closes(samples.inputs, samples.previous)
    candles = [
        candle(i, close=float(c), open=float(o), high=float(h), low=float(lo), volume=float(v))
        for i, (o, h, lo, c, v) in enumerate(series.ohlcv[:60])
    ]
    windows = [candles[end - predictor.window : end] for end in range(predictor.window, 60)]
    assert np.allclose(predictor.predict(windows), expected[: len(windows)], rtol=1e-6)


class NoHistory:
    async def before(self, *_: object) -> list[Candle]:
        return []


async def test_predictions_carry_model_and_its_held_out_skill() -> None:
    predictor = build_predictor(SETTINGS, "4h")
    deps = InferenceDeps(lineup_of([predictor]), CandleWindows(predictor.window), NoHistory())
    ohlcv = random_walk(predictor.window)
    candles = [
        candle(i, close=float(c), open=float(o), high=float(h), low=float(lo), volume=float(v))
        for i, (o, h, lo, c, v) in enumerate(ohlcv)
    ]
    for c in candles[:-1]:
        assert await handle_candles([c], deps) == []
    [prediction] = await handle_candles([candles[-1]], deps)
    assert str(prediction.model) == SETTINGS.model
    metadata = json.loads((SHIPPED / "metadata.json").read_text())
    assert prediction.skill is not None
    assert prediction.skill.beats_naive is metadata["beats_naive"]
    assert prediction.skill.mase == metadata["metrics"]["test"]["model"]["mase"]
    assert prediction.predicted_close > 0
