"""``cryptocast-evaluate``: walk-forward one-step forecasts over any OHLCV CSV.

Prints a short summary, then the metrics of the model and of each baseline as one JSON
object on the last line of stdout; writes a Markdown report and a predicted-vs-actual plot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cryptocast_common.coins import symbol_of
from cryptocast_common.events import interval_delta
from cryptocast_inference.artifacts import ArtifactError, artifact_dir
from cryptocast_inference.lstm import load_artifact
from cryptocast_inference.series import SeriesError, read_series
from cryptocast_inference.settings import LSTM_MODEL, InferenceSettings
from cryptocast_trainer.evaluation import score, verdict, write_report
from cryptocast_trainer.samples import candles_needed, make_samples


def evaluate(data: Path, symbol: str, artifact_path: Path, out: Path) -> dict:
    artifact = load_artifact(artifact_path)
    interval = artifact.metadata["interval"]
    needed = candles_needed(artifact.window) + 1
    series = read_series(data, symbol, min_rows=needed)
    spacing = float(np.median(np.diff(series.times)))
    if spacing != interval_delta(interval).total_seconds():
        raise SeriesError(
            f"{data}: candles are {spacing / 3600:g}h apart, but "
            f"{artifact.model} forecasts {interval} candles"
        )
    samples = make_samples(series, artifact.window, interval)
    if not len(samples):
        raise SeriesError(f"{data}: no run of {needed} consecutive {interval} candles")
    results, predicted = score(artifact, samples)
    report = write_report(
        out,
        f"evaluation-{symbol.lower()}",
        f"{artifact.model} on {data.name}",
        results,
        samples,
        predicted,
    )
    skipped = len(series) - len(samples)
    print(
        f"{symbol}: {len(series):,} candles, {len(samples):,} forecasts "
        f"({skipped:,} candles are only history: warm-up or gaps); report {report}"
    )
    print(verdict(results))
    return results


def main(argv: list[str] | None = None) -> None:
    settings = InferenceSettings()
    parser = argparse.ArgumentParser(prog="cryptocast-evaluate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="CSV with timestamp,open,high,low,close,volume (.gz works too)",
    )
    parser.add_argument("--symbol", required=True)
    parser.add_argument(
        "--model",
        default=LSTM_MODEL,
        help=f"an LSTM artifact as name@version under --artifacts (default "
        f"{LSTM_MODEL}); cryptocast-backtest scores any served model",
    )
    parser.add_argument("--artifacts", type=Path, default=settings.artifacts_dir)
    parser.add_argument(
        "--out", type=Path, default=Path(".data/evaluation"), help="where the report and plot go"
    )
    args = parser.parse_args(argv)
    try:
        results = evaluate(
            args.data, symbol_of(args.symbol), artifact_dir(args.artifacts, args.model), args.out
        )
    except (SeriesError, ArtifactError) as error:
        sys.exit(f"cryptocast-evaluate: {error}")
    print(json.dumps(results))
