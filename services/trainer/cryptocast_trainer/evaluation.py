"""Walk-forward scoring of a model against the baselines, and its Markdown and PNG report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryptocast_common.metrics import TOLERANCE_PCT, forecast_metrics
from cryptocast_inference.lstm import Artifact
from cryptocast_trainer.samples import Samples

BASELINES = {
    "naive": "no change: the next close equals the last one",
    "drift": "the window's average change per candle, added to the last close",
    "sma": "the simple moving average of the window's closes",
}


def baseline_forecasts(samples: Samples) -> dict[str, np.ndarray]:
    closes = samples.closes
    window = closes.shape[1]
    return {
        "naive": samples.previous,
        "drift": samples.previous + (samples.previous - closes[:, 0]) / (window - 1),
        "sma": closes.mean(axis=1),
    }


def score(artifact: Artifact, samples: Samples) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics for the model and each baseline over the same samples, and the model's closes.

    Each forecast uses only the candles up to its window's end, with the weights fixed
    before the first sample: a walk-forward one-step evaluation without refitting.
    """
    predicted = artifact.forecaster.closes(samples.inputs, samples.previous)
    forecasts = {"model": predicted} | baseline_forecasts(samples)
    results: dict[str, Any] = {}
    for name, forecast in forecasts.items():
        metrics = forecast_metrics(
            forecast.tolist(), samples.actual.tolist(), samples.previous.tolist()
        )
        results[name] = (
            {"name": artifact.model.name, "version": artifact.model.version}
            if name == "model"
            else {"name": name}
        ) | metrics
    return results, predicted


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value * 100:.2f}%" if percent else f"{value:,.4f}"


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| forecast | n | MAE | RMSE | MAPE | MASE | direction | within 2% |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, m in results.items():
        label = f"{m['name']}@{m['version']}" if key == "model" else key
        lines.append(
            f"| {label} | {_fmt(m['n'])} | {_fmt(m['mae'])} | {_fmt(m['rmse'])} "
            f"| {_fmt(m['mape'])}% | {_fmt(m['mase'])} | {_fmt(m['directional_accuracy'], True)} "
            f"| {_fmt(m['within_2pct'], True)} |"
        )
    return "\n".join(lines)


def verdict(results: dict[str, Any]) -> str:
    model = results["model"]
    mase, direction = model["mase"], model["directional_accuracy"]
    if mase is not None and mase < 1 and direction is not None and direction > 0.5:
        return (
            f"The model beats the no-change forecast here: MASE {mase:.4f} < 1 and "
            f"directional accuracy {direction:.2%} > 50%."
        )
    return (
        f"The model does NOT beat the no-change forecast here (MASE {_fmt(mase)}, "
        f"directional accuracy {_fmt(direction, True)}); treat its predictions as no "
        "better than the last close."
    )


def pyplot() -> Any:
    """matplotlib's pyplot drawing off-screen; imported only when a report is written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def write_report(
    folder: Path,
    stem: str,
    title: str,
    results: dict[str, Any],
    samples: Samples,
    predicted: np.ndarray,
    notes: str = "",
) -> Path:
    """Write ``<stem>.md`` and ``<stem>.png`` (predicted vs actual closes) into ``folder``."""
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    shown = slice(-min(len(samples), 300), None)
    times = [datetime.fromtimestamp(t, UTC) for t in samples.target_times[shown]]
    figure, axis = plt.subplots(figsize=(11, 4.5))
    axis.plot(times, samples.actual[shown], label="actual close", color="black", linewidth=1.2)
    axis.plot(times, predicted[shown], label="model", color="tab:blue", linewidth=1)
    axis.plot(
        times,
        samples.previous[shown],
        label="naive (last close)",
        color="tab:orange",
        linewidth=0.8,
        linestyle="--",
    )
    axis.set_title(f"{title}: last {len(times)} one-step forecasts")
    axis.legend()
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(folder / f"{stem}.png", dpi=90)
    plt.close(figure)

    span = f"{_iso(samples.target_times.min())} .. {_iso(samples.target_times.max())}"
    text = "\n\n".join(
        part
        for part in [
            f"# {title}",
            f"{len(samples):,} one-step forecasts of candles closing {span}. Within 2% means "
            f"within {TOLERANCE_PCT:g}% of the actual close; direction counts only non-ties.",
            markdown_table(results),
            verdict(results),
            "Baselines: " + "; ".join(f"**{k}**: {v}" for k, v in BASELINES.items()) + ".",
            notes,
            f"![predicted vs actual]({stem}.png)",
        ]
        if part
    )
    path = folder / f"{stem}.md"
    path.write_text(text + "\n")
    return path
