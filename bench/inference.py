"""Per-prediction cost of the shipped model: the NumPy path that serves, and Keras for reference.

    .venv/bin/python bench/inference.py [--repeat 2000] [--no-keras]

Prints a Markdown table (median and 99th percentile per call, in milliseconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cryptocast_common.events import Candle
from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.lstm import LstmPredictor, load_artifact
from cryptocast_inference.series import read_candles, read_series
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_trainer.samples import make_samples

BUNDLE = Path(__file__).parents[1] / "services/ingestor/cryptocast_ingestor/data"
DATA = BUNDLE / "binance/BTC_4h.csv.gz"


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    for _ in range(min(50, repeat)):
        call()
    costs = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        costs.append((time.perf_counter() - start) * 1000)
    return statistics.median(costs), float(np.percentile(costs, 99))


def candle_windows(predictor: LstmPredictor, count: int) -> list[list[Candle]]:
    """``count`` different windows of real BTC candles, as the service receives them."""
    candles = read_candles(DATA, "BTC", "4h")[: count + predictor.window]
    return [candles[i : i + predictor.window] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras reference rows")
    args = parser.parse_args()
    settings = InferenceSettings()
    artifact = load_artifact(artifact_dir(settings.artifacts_dir, LSTM_MODEL))
    predictor = LstmPredictor(artifact)
    windows = candle_windows(predictor, 100)
    inputs = artifact.forecaster.scaler.transform(
        make_samples(read_series(DATA, "BTC"), artifact.window, "4h").inputs[:100]
    )
    network = artifact.forecaster.network

    rows = [
        (
            "NumPy: candle events → predicted close (serving path)",
            1,
            lambda: predictor.predict(windows[:1]),
        ),
        (
            "NumPy: candle events → predicted close (serving path)",
            100,
            lambda: predictor.predict(windows),
        ),
        ("NumPy: network forward pass only", 1, lambda: network(inputs[:1])),
        ("NumPy: network forward pass only", 100, lambda: network(inputs)),
    ]
    if not args.no_keras:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf

        model = keras.saving.load_model(artifact.path / "model.keras")
        graph = tf.function(lambda x: model(x, training=False))
        compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
        rows += [
            ("Keras `model.predict`", 1, lambda: model.predict(inputs[:1], verbose=0)),
            ("Keras `model(x)`", 1, lambda: model(inputs[:1], training=False)),
            ("`tf.function`", 1, lambda: graph(inputs[:1])),
            ("`tf.function`", 100, lambda: graph(inputs)),
            ("`tf.function` with XLA", 1, lambda: compiled(inputs[:1])),
            ("`tf.function` with XLA", 100, lambda: compiled(inputs)),
        ]
    print(
        f"model {artifact.model}, window {artifact.window} x {inputs.shape[2]} features, "
        f"{args.repeat} calls per row"
    )
    print("| path | batch | median ms/call | p99 ms/call | median ms/prediction |")
    print("|---|---:|---:|---:|---:|")
    for label, batch, call in rows:
        repeat = args.repeat if "predict`" not in label else max(20, args.repeat // 20)
        median, p99 = timed(call, repeat)
        print(
            f"| {label} | {batch} | {median:.3f} | {p99:.3f} | {median / batch:.4f} |", flush=True
        )


if __name__ == "__main__":
    main()
