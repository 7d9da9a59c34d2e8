"""``cryptocast-train``: fit the global LSTM on several coins and write a versioned artifact.

Samples are split chronologically by the time of the candle they predict, with the same
cut-off times for every coin, so no coin's test period is seen through another coin's
training data; the scaler is fit on the training split alone. Keras is imported here only:
the service itself never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np

from cryptocast_common.coins import symbol_of
from cryptocast_common.events import iso_utc
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS, sha256_of
from cryptocast_inference.features import FEATURES, WARMUP, FeatureScaler
from cryptocast_inference.lstm import SERVED_FILES, Artifact, Forecaster
from cryptocast_inference.network import Dense, Lstm, NumpyNetwork
from cryptocast_inference.series import Series, SeriesError, read_series
from cryptocast_trainer.evaluation import (
    markdown_table,
    pyplot,
    score,
    verdict,
    write_report,
)
from cryptocast_trainer.samples import Samples, make_samples

BUNDLES = Path(__file__).parent.parent.parent / "ingestor" / "cryptocast_ingestor" / "data"
DEFAULT_DATA = [
    f"{coin}={BUNDLES}/binance/{coin}_4h.csv.gz" for coin in ("BTC", "ETH", "ADA", "BNB")
] + [f"{coin}={BUNDLES}/coingecko/{coin}_4h.csv.gz" for coin in ("BTC", "ETH", "SOL", "XRP")]


@dataclass(frozen=True)
class Hyperparameters:
    window: int = 12
    units: tuple[int, ...] = (32, 16)
    dropout: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 256
    epochs: int = 60
    patience: int = 8
    huber_delta: float = 1.0
    train_share: float = 0.70
    validation_share: float = 0.15
    seed: int = 7


PARTS = ("train", "validation", "test")


def split_chronologically(target_times: np.ndarray, hp: Hyperparameters) -> np.ndarray:
    """The part (index into PARTS) of each sample, by the time of the candle it predicts."""
    times = np.sort(target_times)
    cutoffs = [
        times[int(len(times) * hp.train_share)],
        times[int(len(times) * (hp.train_share + hp.validation_share))],
    ]
    return np.searchsorted(cutoffs, target_times, side="right")


def build_model(hp: Hyperparameters, features: int) -> Any:
    import keras

    inputs = keras.Input((hp.window, features), name="features")
    x = inputs
    for index, units in enumerate(hp.units):
        x = keras.layers.LSTM(units, return_sequences=index < len(hp.units) - 1)(x)
        x = keras.layers.Dropout(hp.dropout)(x)
    outputs = keras.layers.Dense(1, name="next_log_return")(x)
    return keras.Model(inputs, outputs, name="cryptocast_lstm")


def to_numpy(model: Any) -> NumpyNetwork:
    """The Keras model's weights as the NumPy network that serves them."""
    import keras

    layers: list[Lstm | Dense] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            if (layer.activation.__name__, layer.recurrent_activation.__name__) != (
                "tanh",
                "sigmoid",
            ):
                raise ValueError(f"{layer.name}: only tanh/sigmoid LSTMs can be exported")
            kernel, recurrent, bias = (w.astype(np.float32) for w in layer.get_weights())
            layers.append(Lstm(kernel, recurrent, bias, layer.return_sequences))
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = (w.astype(np.float32) for w in layer.get_weights())
            layers.append(Dense(kernel, bias))
    return NumpyNetwork(tuple(layers))


def _load(specs: list[str]) -> tuple[list[Series], list[dict[str, Any]]]:
    series, described = [], []
    for spec in specs:
        symbol, _, path = spec.partition("=")
        loaded = read_series(Path(path), symbol_of(symbol))
        series.append(loaded)
        described.append(
            {
                "symbol": loaded.symbol,
                "file": Path(path).name,
                "rows": len(loaded),
                "sha256": sha256_of(Path(path)),
                "first": _iso(loaded.times[0]),
                "last": _iso(loaded.times[-1]),
            }
        )
    return series, described


def _iso(seconds: float) -> str:
    return iso_utc(datetime.fromtimestamp(float(seconds), UTC))


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("numpy", "keras", "tensorflow", "tensorflow-cpu"):
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return versions


def _per_symbol(artifact: Artifact, test: Samples, symbols: np.ndarray) -> dict[str, Any]:
    return {
        symbol: score(artifact, test.select(symbols == symbol))[0]["model"]
        for symbol in sorted(set(symbols.tolist()))
    }


def _plot_history(history: dict[str, list[float]], path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 4))
    axis.plot(history["loss"], label="training loss")
    axis.plot(history["val_loss"], label="validation loss")
    axis.set_xlabel("epoch")
    axis.set_ylabel("Huber loss (scaled log return)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def train(
    data: list[str], hp: Hyperparameters, interval: str, name: str, version: str | None, out: Path
) -> Path:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(hp.seed)
    tf.config.experimental.enable_op_determinism()

    series, files = _load(data)
    parts = [make_samples(s, hp.window, interval) for s in series]
    samples = Samples.concat(parts)
    symbols = np.concatenate(
        [np.full(len(p), s.symbol) for p, s in zip(parts, series, strict=True)]
    )
    part_of = split_chronologically(samples.target_times, hp)
    train_set, validation_set, test_set = (samples.select(part_of == i) for i in range(3))
    print(
        f"samples: {len(train_set):,} train, {len(validation_set):,} validation, "
        f"{len(test_set):,} test",
        flush=True,
    )

    train_rows = train_set.inputs[:, -1, :]  # each candle once, not once per window
    scaler = FeatureScaler.fit(train_rows, train_set.target_log_returns)

    def xy(part: Samples) -> tuple[np.ndarray, np.ndarray]:
        return scaler.transform(part.inputs), (
            part.target_log_returns / scaler.target_scale
        ).astype(np.float32)

    data_hash = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    hp_hash = hashlib.sha256(json.dumps(asdict(hp)).encode()).hexdigest()
    run_hash = hashlib.sha256((data_hash + hp_hash).encode()).hexdigest()[:8]
    version = version or f"{datetime.now(UTC):%Y%m%d}-{run_hash}"
    folder = out / name / version
    folder.mkdir(parents=True, exist_ok=True)

    model = build_model(hp, len(FEATURES))
    steps = -(-len(train_set) // hp.batch_size) * hp.epochs
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(hp.learning_rate, steps, alpha=0.05)
        ),
        loss=keras.losses.Huber(hp.huber_delta),
    )
    history = model.fit(
        *xy(train_set),
        validation_data=xy(validation_set),
        epochs=hp.epochs,
        batch_size=hp.batch_size,
        shuffle=True,
        verbose=2,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=hp.patience, restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(folder / "model.keras", save_best_only=True),
        ],
    )
    model = keras.saving.load_model(folder / "model.keras")  # the best epoch's weights

    network = to_numpy(model)
    probe = scaler.transform(test_set.inputs[:256])
    gap = float(np.max(np.abs(network(probe) - model(probe, training=False).numpy()[:, 0])))
    if gap > 1e-5:
        raise RuntimeError(f"NumPy forward pass differs from Keras by {gap:g}")
    network.save(folder / "network.npz")
    scaler.save(folder / "scaler.json")

    artifact = Artifact(folder, {"name": name, "version": version}, Forecaster(scaler, network))
    validation_results = score(artifact, validation_set)[0]
    test_results, test_predicted = score(artifact, test_set)
    beats = (test_results["model"]["mase"] or 2) < 1 and (
        test_results["model"]["directional_accuracy"] or 0
    ) > 0.5

    metadata = {
        "name": name,
        "version": version,
        "created_at": iso_utc(datetime.now(UTC)),
        "features": list(FEATURES),
        "warmup": WARMUP,
        "window": hp.window,
        "interval": interval,
        "horizon": 1,
        "target": "log(next close / last close), divided by scaler.json target_scale",
        "hyperparameters": asdict(hp)
        | {"optimizer": "adam", "schedule": "cosine decay", "loss": "huber"},
        "data": {
            "files": files,
            "sha256": data_hash,
            "range": {
                "first": min(f["first"] for f in files),
                "last": max(f["last"] for f in files),
            },
            "splits": {
                part: {
                    "samples": len(subset),
                    "from": _iso(subset.target_times.min()),
                    "to": _iso(subset.target_times.max()),
                }
                for part, subset in zip(PARTS, (train_set, validation_set, test_set), strict=True)
            },
        },
        "training": {
            "epochs_run": len(history.history["loss"]),
            "best_val_loss": float(min(history.history["val_loss"])),
            "numpy_vs_keras_max_abs_diff": gap,
        },
        "libraries": _library_versions(),
        "metrics": {
            "validation": validation_results,
            "test": test_results,
            "test_model_by_symbol": _per_symbol(artifact, test_set, symbols[part_of == 2]),
        },
        "beats_naive": beats,
        "files": {f: sha256_of(folder / f) for f in SERVED_FILES},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    _plot_history(history.history, folder / "training_history.png")
    write_report(
        folder,
        "evaluation",
        f"{name}@{version}, held-out test split",
        test_results,
        test_set,
        test_predicted,
        notes="Validation split:\n\n" + markdown_table(validation_results),
    )
    print(verdict(test_results), flush=True)
    print(f"artifact written to {folder}", flush=True)
    return folder


def main(argv: list[str] | None = None) -> None:
    defaults = Hyperparameters()
    parser = argparse.ArgumentParser(prog="cryptocast-train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        metavar="SYMBOL=FILE",
        help="an OHLCV CSV per coin (repeat); default: the bundled candles",
    )
    parser.add_argument("--interval", default="4h")
    parser.add_argument("--name", default="lstm-4h")
    parser.add_argument("--version", help="default: <date>-<hash of data and settings>")
    parser.add_argument("--out", type=Path, default=BUNDLED_ARTIFACTS)
    for field, default in asdict(defaults).items():
        flag = "--" + field.replace("_", "-")
        if isinstance(default, tuple):
            parser.add_argument(
                flag,
                default=",".join(map(str, default)),
                help=f"comma-separated (default {default})",
            )
        else:
            parser.add_argument(
                flag, type=type(default), default=default, help=f"default {default}"
            )
    args = parser.parse_args(argv)
    chosen: dict[str, Any] = {
        f: tuple(int(u) for u in getattr(args, f).split(",")) if f == "units" else getattr(args, f)
        for f in asdict(defaults)
    }
    hp = Hyperparameters(**chosen)
    try:
        train(args.data or DEFAULT_DATA, hp, args.interval, args.name, args.version, args.out)
    except SeriesError as error:
        sys.exit(f"cryptocast-train: {error}")
