"""The trained network's forward pass in NumPy.

Importing TensorFlow costs about 15 s and 600 MB here, and a Keras call costs tens of
milliseconds, so serving runs the exported weights through this exact re-implementation of
Keras' LSTM (gates ordered input, forget, candidate, output; sigmoid and tanh) and Dense
layers. A test holds it to Keras' own output within 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # the same function, without overflow warnings


@dataclass(frozen=True)
class Lstm:
    kernel: np.ndarray  # (inputs, 4 * units)
    recurrent_kernel: np.ndarray  # (units, 4 * units)
    bias: np.ndarray  # (4 * units,)
    return_sequences: bool

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch, steps, _ = x.shape
        units = self.recurrent_kernel.shape[0]
        projected = x @ self.kernel + self.bias  # every step's input term in one product
        h = np.zeros((batch, units), dtype=x.dtype)
        c = np.zeros((batch, units), dtype=x.dtype)
        outputs = []
        for step in range(steps):
            z = projected[:, step] + h @ self.recurrent_kernel
            i, f = _sigmoid(z[:, :units]), _sigmoid(z[:, units:2 * units])
            candidate, o = np.tanh(z[:, 2 * units:3 * units]), _sigmoid(z[:, 3 * units:])
            c = f * c + i * candidate
            h = o * np.tanh(c)
            outputs.append(h)
        return np.stack(outputs, axis=1) if self.return_sequences else h


@dataclass(frozen=True)
class Dense:
    kernel: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.kernel + self.bias


@dataclass(frozen=True)
class NumpyNetwork:
    """Stacked LSTM layers and a linear head; dropout is inactive at inference."""

    layers: tuple[Lstm | Dense, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(batch, steps, features) → (batch,), computed in float64.

        In float32 the result of one window moved in its 7th digit with the size of the
        batch it came in (BLAS blocks differently); float64 keeps that below any digit a
        price is reported with, so a redelivered candle yields the identical prediction.
        """
        x = np.asarray(x, dtype=np.float64)
        for layer in self.layers:
            x = layer(x)
        return x[:, 0]

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Lstm):
                arrays |= {f"{index}.lstm.kernel": layer.kernel,
                           f"{index}.lstm.recurrent_kernel": layer.recurrent_kernel,
                           f"{index}.lstm.bias": layer.bias,
                           f"{index}.lstm.return_sequences": np.array(layer.return_sequences)}
            else:
                arrays |= {f"{index}.dense.kernel": layer.kernel,
                           f"{index}.dense.bias": layer.bias}
        with path.open("wb") as file:
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path: Path) -> NumpyNetwork:
        with np.load(path) as data:
            arrays = {key: data[key].astype(np.float64) for key in data.files}
        layers: list[Lstm | Dense] = []
        for index in range(len({key.split(".")[0] for key in arrays})):
            if f"{index}.lstm.kernel" in arrays:
                layers.append(Lstm(arrays[f"{index}.lstm.kernel"],
                                   arrays[f"{index}.lstm.recurrent_kernel"],
                                   arrays[f"{index}.lstm.bias"],
                                   bool(arrays[f"{index}.lstm.return_sequences"])))
            else:
                layers.append(Dense(arrays[f"{index}.dense.kernel"],
                                    arrays[f"{index}.dense.bias"]))
        return cls(tuple(layers))
