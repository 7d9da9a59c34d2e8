"""The trained network's forward pass in NumPy.

Importing TensorFlow costs about 15 s and 600 MB here, and a Keras call costs tens of
milliseconds, so serving runs the exported weights through this exact re-implementation of
Keras' LSTM (gates ordered input, forget, candidate, output; sigmoid and tanh) and Dense
layers. A test holds it to Keras' own output within 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Lstm:
    kernel: np.ndarray  # (inputs, 4 * units), gate blocks input, forget, candidate, output
    recurrent_kernel: np.ndarray  # (units, 4 * units)
    bias: np.ndarray  # (4 * units,)
    return_sequences: bool

    @cached_property
    def _prepared(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keras' weights rearranged so each step needs few NumPy calls.

        sigmoid(z) = (1 + tanh(z / 2)) / 2: halving the input, forget and output gates'
        weights lets one tanh serve all four gates. The loop keeps 2h instead of h, so the
        recurrent weights are halved once more.
        """
        units = self.recurrent_kernel.shape[0]
        half = np.full(4 * units, 0.5, dtype=np.float32)
        half[2 * units : 3 * units] = 1.0  # the candidate gate keeps its tanh unscaled
        return (self.kernel * half, self.recurrent_kernel * half * 0.5, self.bias * half)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch, steps, inputs = x.shape
        units = self.recurrent_kernel.shape[0]
        kernel, recurrent, bias = self._prepared
        # Every step's input term in one product, step-major so each step is contiguous.
        projected = (x.transpose(1, 0, 2).reshape(steps * batch, inputs) @ kernel + bias).reshape(
            steps, batch, 4 * units
        )
        h2 = np.zeros((batch, units), dtype=x.dtype)  # twice the hidden state
        c = np.zeros((batch, units), dtype=x.dtype)
        outputs = np.empty((steps, batch, units), dtype=x.dtype)
        for step in range(steps):
            z = np.tanh(projected[step] + h2 @ recurrent)
            gate = z + 1.0  # twice the sigmoid of the input, forget and output gates
            c = 0.5 * (
                gate[:, units : 2 * units] * c + gate[:, :units] * z[:, 2 * units : 3 * units]
            )
            h2 = outputs[step] = gate[:, 3 * units :] * np.tanh(c)
        if self.return_sequences:
            return 0.5 * outputs.transpose(1, 0, 2)
        return 0.5 * h2


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
        """(batch, steps, features) → (batch,), in float32 as Keras computes it."""
        x = np.asarray(x, dtype=np.float32)
        for layer in self.layers:
            x = layer(x)
        return x[:, 0]

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Lstm):
                arrays |= {
                    f"{index}.lstm.kernel": layer.kernel,
                    f"{index}.lstm.recurrent_kernel": layer.recurrent_kernel,
                    f"{index}.lstm.bias": layer.bias,
                    f"{index}.lstm.return_sequences": np.array(layer.return_sequences),
                }
            else:
                arrays |= {f"{index}.dense.kernel": layer.kernel, f"{index}.dense.bias": layer.bias}
        with path.open("wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]  # the stub lets ** fill allow_pickle

    @classmethod
    def load(cls, path: Path) -> NumpyNetwork:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        layers: list[Lstm | Dense] = []
        for index in range(len({key.split(".")[0] for key in arrays})):
            if f"{index}.lstm.kernel" in arrays:
                layers.append(
                    Lstm(
                        arrays[f"{index}.lstm.kernel"],
                        arrays[f"{index}.lstm.recurrent_kernel"],
                        arrays[f"{index}.lstm.bias"],
                        bool(arrays[f"{index}.lstm.return_sequences"]),
                    )
                )
            else:
                layers.append(Dense(arrays[f"{index}.dense.kernel"], arrays[f"{index}.dense.bias"]))
        return cls(tuple(layers))
