"""The trainer for real: a tiny LSTM fit with TensorFlow, saved, reloaded and served by NumPy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.features import FEATURES
from cryptocast_inference.lstm import load_artifact
from cryptocast_inference.series import read_series
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_trainer.samples import make_samples
from cryptocast_trainer.train import Hyperparameters, train

BUNDLE = Path(__file__).parents[2] / "services/ingestor/cryptocast_ingestor/data/binance"
DATA = [f"ADA={BUNDLE}/ADA_4h.csv.gz", f"BNB={BUNDLE}/BNB_4h.csv.gz"]


def keras_module() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hp = Hyperparameters(units=(8, 4), epochs=2, batch_size=128)
    return train(DATA, hp, "4h", "tiny", "t1", tmp_path_factory.mktemp("artifacts"))


def test_trainer_writes_a_complete_versioned_artifact(tiny: Path) -> None:
    assert tiny.parts[-2:] == ("tiny", "t1")
    for name in (
        "model.keras",
        "network.npz",
        "scaler.json",
        "metadata.json",
        "training_history.png",
        "evaluation.md",
        "evaluation.png",
    ):
        assert (tiny / name).stat().st_size > 0, name
    metadata = json.loads((tiny / "metadata.json").read_text())
    assert metadata["features"] == list(FEATURES)
    assert (metadata["window"], metadata["interval"], metadata["horizon"]) == (12, "4h", 1)
    assert [f["symbol"] for f in metadata["data"]["files"]] == ["ADA", "BNB"]
    splits = metadata["data"]["splits"]
    assert (
        splits["train"]["to"]
        < splits["validation"]["from"]
        <= splits["validation"]["to"]
        < splits["test"]["from"]
    )
    assert metadata["training"]["epochs_run"] == 2
    assert {"keras", "numpy", "python"} <= set(metadata["libraries"])
    assert isinstance(metadata["beats_naive"], bool)
    assert set(metadata["metrics"]["test"]) == {"model", "naive", "drift", "sma"}
    assert "held-out test split" in (tiny / "evaluation.md").read_text()


def numpy_matches_keras(folder: Path) -> float:
    keras = keras_module()
    artifact = load_artifact(folder)
    model = keras.saving.load_model(folder / "model.keras")
    series = read_series(BUNDLE / "ADA_4h.csv.gz", "ADA")
    inputs = artifact.forecaster.scaler.transform(
        make_samples(series, artifact.window, "4h").inputs[:500]
    )
    expected = model.predict(inputs, verbose=0)[:, 0]
    return float(np.max(np.abs(artifact.forecaster.network(inputs) - expected)))


def test_saved_model_reloads_and_numpy_serves_it_exactly(tiny: Path) -> None:
    assert numpy_matches_keras(tiny) < 1e-5


def test_shipped_model_numpy_forward_pass_equals_keras() -> None:
    settings = InferenceSettings()
    assert numpy_matches_keras(artifact_dir(settings.artifacts_dir, LSTM_MODEL)) < 1e-5
