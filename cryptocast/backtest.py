"""``cryptocast-backtest``: replay OHLCV CSVs through the live path and score what it served.

The candles go, in time order, through the real inference and verifier handlers on the
in-memory bus, so whatever the service does live (its model, intervals and ``p_up``) is
exactly what is scored; the clock is the candles' own times. The last line of stdout is one
JSON object: the served model's scorecard and the no-change forecast's on the same candles
(see ``cryptocast_common.scorecard``). With several coins, those are pooled over all of
them with every error taken relative to its last close (so each coin weighs alike), and
``coins`` holds each coin's own. A Markdown report (and, for one coin, plots) goes to
``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cryptocast_common.bus import InMemoryBus
from cryptocast_common.coins import symbol_of
from cryptocast_common.events import (
    Candle,
    Event,
    ModelChange,
    Prediction,
    Verification,
    interval_delta,
)
from cryptocast_common.runtime import Service
from cryptocast_common.scorecard import Scorecard, scorecard
from cryptocast_common.settings import CommonSettings
from cryptocast_inference.artifacts import ArtifactError
from cryptocast_inference.bootstrap import bootstrap as inference
from cryptocast_inference.series import SeriesError, read_candles
from cryptocast_inference.settings import InferenceSettings
from cryptocast_trainer.evaluation import pyplot
from cryptocast_verifier.bootstrap import bootstrap as verifier
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.store import InMemoryVerifierStore

STEP = 250  # candles published between two waits for the pipeline to settle
WARMUP_CANDLES = 500


class NoHistory:
    """Everything the backtest knows arrives on the bus: no read-back."""

    async def before(self, symbol: str, interval: str, end: datetime, limit: int) -> list[Candle]:
        return []


@dataclass
class Outcome:
    """What the pipeline published: every model's predictions and verdicts, and the
    lifecycle's changes, in time order."""

    predictions: list[Prediction] = field(default_factory=list)
    verdicts: list[Verification] = field(default_factory=list)
    changes: list[ModelChange] = field(default_factory=list)

    def served(self) -> tuple[list[Prediction], list[Verification]]:
        """The champion's: what the API would have served."""
        return (
            [p for p in self.predictions if p.role in SERVED],
            [v for v in self.verdicts if v.role in SERVED],
        )


SERVED = ("champion", None)  # None: a prediction from before roles (schema version 2)


async def replay(candles: Sequence[Candle], settings: InferenceSettings, progress: bool) -> Outcome:
    """Every model's predictions and verdicts on ``candles`` (in time order), through the
    service handlers, lifecycle included."""
    common = CommonSettings(
        symbols=sorted({c.symbol for c in candles}), interval=candles[0].interval
    )
    bus = InMemoryBus(max_attempts=1)
    outcome = Outcome()

    async def collect(events: list[Event]) -> list[Event]:
        outcome.verdicts.extend(e for e in events if isinstance(e, Verification))
        outcome.predictions.extend(e for e in events if isinstance(e, Prediction))
        outcome.changes.extend(e for e in events if isinstance(e, ModelChange))
        return []

    services: list[Service] = [
        await verifier(common, bus=bus, store=InMemoryVerifierStore()),
        await inference(common, settings, bus=bus, history=NoHistory()),
    ]
    await bus.consume(
        "backtest.outcomes",
        ["verification.#", "prediction.#", "model_change.#"],
        collect,
        batch_size=STEP,
    )
    for service in services:
        await service.start()
    try:
        for start in range(0, len(candles), STEP):
            await bus.publish(candles[start : start + STEP])
            await bus.drain()
            if progress:
                done = min(start + STEP, len(candles))
                print(
                    f"backtest: {done:,} of {len(candles):,} candles, "
                    f"{len(outcome.verdicts):,} verdicts",
                    file=sys.stderr,
                    flush=True,
                )
        if bus.dead_letters:
            raise RuntimeError(
                f"the pipeline refused {len(bus.dead_letters)} messages: "
                f"{bus.dead_letters[0].reason}"
            )
    finally:
        await bus.close()

    def by_target(event: Prediction | Verification) -> datetime:
        return event.target_time

    outcome.predictions.sort(key=by_target)
    outcome.verdicts.sort(key=by_target)
    return outcome


def ungated(
    predictions: Sequence[Prediction], verdicts: Sequence[Verification]
) -> list[Verification]:
    """The champion's own forecasts judged as if no gate had stood in their way."""
    own = {p.event_id: p for p in predictions}
    judged = []
    for v in verdicts:
        p = own[v.prediction_id]
        raw = p.model_dump() | {
            "predicted_close": p.own_close,
            "gate": None,
            "model_close": None,
            "role": None,
            "event_id": "",
        }
        judged.append(verify(Prediction.model_validate(raw), v.actual_close, v.tolerance_pct))
    return judged


def lifecycle_report(
    verdicts: Sequence[Verification], changes: Sequence[ModelChange]
) -> dict[str, Any]:
    """Per coin, the share of served candles gated to no change; every change of champion."""
    gated: dict[str, list[bool]] = {}
    for v in verdicts:
        gated.setdefault(v.symbol, []).append(v.gate == "closed")
    return {
        "gated_share": {coin: sum(flags) / len(flags) for coin, flags in sorted(gated.items())},
        "champion_changes": [
            {
                "symbol": c.symbol,
                "kind": c.kind,
                "model": str(c.model),
                "previous": None if c.previous is None else str(c.previous),
                "at": c.decided_at.isoformat(),
                "evidence": None if c.evidence is None else c.evidence.model_dump(),
            }
            for c in changes
            if c.kind in ("promoted", "demoted")
        ],
    }


def no_change(verdicts: Sequence[Verification]) -> list[Verification]:
    """The naive forecast judged on the same candles by the same verifier."""
    judged = []
    for v in verdicts:
        naive = Prediction(
            symbol=v.symbol,
            interval=v.interval,
            based_on={"close_time": v.based_on_time, "close": v.based_on_close},
            target_time=v.target_time,
            predicted_close=v.based_on_close,
            model={"name": "naive", "version": "1"},
        )
        judged.append(verify(naive, v.actual_close, v.tolerance_pct))
    return judged


def summary(verdicts: Sequence[Verification]) -> dict[str, Any]:
    model = verdicts[0].model
    return {
        "model": {"name": model.name, "version": model.version} | scorecard(verdicts).model_dump(),
        "naive": {"name": "naive"} | scorecard(no_change(verdicts)).model_dump(),
    }


def relative(verdict: Verification) -> Verification:
    """The verdict in units of its last close, so that coins can be pooled."""
    base = verdict.based_on_close
    return verdict.model_copy(
        update={
            "based_on_close": 1.0,
            "predicted_close": verdict.predicted_close / base,
            "actual_close": verdict.actual_close / base,
        }
    )


def pooled_summary(verdicts: Sequence[Verification]) -> dict[str, Any]:
    """One coin: its summary. Several: the pooled one, in units of the last close, and each
    coin's under ``coins``."""
    coins = sorted({v.symbol for v in verdicts})
    if len(coins) == 1:
        return summary(verdicts)
    pooled = summary([relative(v) for v in verdicts])
    pooled["coins"] = {coin: summary([v for v in verdicts if v.symbol == coin]) for coin in coins}
    return pooled


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4f}" for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_report(
    out: Path,
    stem: str,
    title: str,
    results: dict[str, Any],
    predictions: Sequence[Prediction],
    verdicts: Sequence[Verification],
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    keys = [k for k in Scorecard.model_fields if k not in ("beats_naive",)]
    rows = ["| coin | forecast | " + " | ".join(keys) + " |", "|---|---|" + "---:|" * len(keys)]
    tables = {"all": results} | results.get("coins", {})
    for coin, cards in tables.items():
        for name in ("model", "naive"):
            rows.append(
                f"| {coin} | {name} | " + " | ".join(_cell(cards[name].get(k)) for k in keys) + " |"
            )
    one_coin = "coins" not in results
    plots = _plots(out, stem, predictions, verdicts) if one_coin else []
    text = (
        f"# {title}\n\n" + "\n".join(rows) + "\n\n"
        "`mase` is the MAE relative to the no-change forecast on the same candles; "
        "`dm_vs_naive` above 1.96 means significantly worse than no change at 5%, below "
        "-1.96 significantly better. Pooled over several coins (`all`), errors are "
        "relative to the last close.\n\n" + "".join(f"![{p}]({p})\n\n" for p in plots)
    )
    report = out / f"{stem}.md"
    report.write_text(text)
    return report


def _plots(
    out: Path, stem: str, predictions: Sequence[Prediction], verdicts: Sequence[Verification]
) -> list[str]:
    plt = pyplot()
    names = []
    actual = {v.target_time: v.actual_close for v in verdicts}
    shown = [p for p in predictions if p.target_time in actual]
    times = [p.target_time for p in shown]
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(times, [actual[t] for t in times], lw=0.8, label="actual close")
    axis.plot(times, [p.predicted_close for p in shown], lw=0.8, label="served forecast")
    banded = [p for p in shown if p.interval_95 and p.interval_80]
    for level, alpha in ((95, 0.15), (80, 0.25)):
        bounds = [getattr(p, f"interval_{level}") for p in banded]
        if banded:
            axis.fill_between(
                [p.target_time for p in banded],
                [b.lower for b in bounds],
                [b.upper for b in bounds],
                alpha=alpha,
                label=f"{level}% interval",
            )
    axis.legend()
    names.append(_save(figure, out, f"{stem}-forecast.png"))
    outcomes = {v.target_time: v.went_up for v in verdicts if v.went_up is not None}
    scored = [p for p in shown if p.p_up is not None and p.target_time in outcomes]
    if scored:
        figure, axis = plt.subplots(figsize=(5, 5))
        p_up = np.array([p.p_up for p in scored], dtype=float)
        ups = np.array([outcomes[p.target_time] for p in scored], dtype=float)
        edges = np.linspace(0, 1, 11)
        bins = np.clip(np.digitize(p_up, edges) - 1, 0, 9)
        used = [b for b in range(10) if (bins == b).any()]
        axis.plot([0, 1], [0, 1], ls="--", color="grey")
        axis.plot(
            [p_up[bins == b].mean() for b in used],
            [ups[bins == b].mean() for b in used],
            marker="o",
        )
        axis.set_xlabel("p_up (mean of its decile)")
        axis.set_ylabel("share of up candles")
        names.append(_save(figure, out, f"{stem}-calibration.png"))
    times = [v.target_time for v in verdicts]
    figure, axis = plt.subplots(figsize=(11, 3))
    errors = np.array([v.error_pct for v in verdicts])
    naive = np.array([v.naive_error_pct for v in verdicts])
    span = min(180, len(verdicts))
    kernel = np.ones(span)
    ratio = np.convolve(errors, kernel, "valid") / np.maximum(
        np.convolve(naive, kernel, "valid"), 1e-12
    )
    axis.plot(times[span - 1 :], ratio, lw=0.8)
    axis.axhline(1, color="grey", ls="--")
    axis.set_ylabel(f"MAE / no change's, {span} candles")
    names.append(_save(figure, out, f"{stem}-rolling-mae-ratio.png"))
    return names


def _save(figure: Any, out: Path, name: str) -> str:
    figure.tight_layout()
    figure.savefig(out / name, dpi=90)
    figure.clf()
    return name


def data_sources(data: Sequence[str], symbol: str | None) -> dict[str, Path]:
    """``--data`` values: ``SYMBOL=<file>``, or a file named by ``--symbol``."""
    sources = {}
    for item in data:
        name, equals, path = item.partition("=")
        if equals:
            sources[symbol_of(name.strip())] = Path(path)
        elif symbol:
            sources[symbol_of(symbol)] = Path(item)
        else:
            raise SeriesError(f"{item}: name its coin with --symbol, or give SYMBOL={item}")
    return sources


def main(argv: list[str] | None = None) -> None:
    defaults = InferenceSettings()
    parser = argparse.ArgumentParser(prog="cryptocast-backtest", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        help="CSV with timestamp,open,high,low,close,volume (.gz works too), "
        "as <file> with --symbol, or SYMBOL=<file>; repeat for more coins",
    )
    parser.add_argument("--symbol", help="the coin of a --data <file>")
    parser.add_argument("--interval", default="4h")
    parser.add_argument(
        "--model",
        default=defaults.model,
        help=f"name@version of the champion, or naive (default {defaults.model})",
    )
    parser.add_argument(
        "--challengers",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=[],
        help="comma-separated name@version models scored beside the champion, which the "
        "lifecycle may promote",
    )
    parser.add_argument(
        "--since",
        type=datetime.fromisoformat,
        default=None,
        help="score only targets from this UTC date on (e.g. 2024-10-24, the "
        "final test year); earlier candles only warm the pipeline up",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_CANDLES,
        help="with --since: candles replayed before it (default "
        f"{WARMUP_CANDLES}); older ones are skipped",
    )
    parser.add_argument("--out", type=Path, default=Path(".data/backtest"))
    args = parser.parse_args(argv)
    since = None if args.since is None else args.since.replace(tzinfo=args.since.tzinfo or UTC)
    try:
        sources = data_sources(args.data, args.symbol)
        candles = [
            c for coin, path in sources.items() for c in read_candles(path, coin, args.interval)
        ]
        if since is not None:
            start = since - args.warmup * interval_delta(args.interval)
            candles = [c for c in candles if c.open_time >= start]
        candles.sort(key=lambda c: (c.open_time, c.symbol))
        settings = InferenceSettings(model=args.model, challengers=args.challengers, baseline=False)
        outcome = asyncio.run(replay(candles, settings, progress=True))
    except (SeriesError, ArtifactError) as error:
        sys.exit(f"cryptocast-backtest: {error}")
    predictions, verdicts = outcome.served()
    changes = outcome.changes
    if since is not None:
        predictions = [p for p in predictions if p.target_time >= since]
        verdicts = [v for v in verdicts if v.target_time >= since]
        changes = [c for c in changes if c.decided_at >= since]
    if not verdicts:
        sys.exit(
            f"cryptocast-backtest: {', '.join(args.data)}: too few consecutive candles "
            "for a forecast"
        )
    results = pooled_summary(verdicts)
    results["ungated"] = pooled_summary(ungated(predictions, verdicts))["model"]
    results["lifecycle"] = lifecycle_report(verdicts, changes)
    name = "-".join(sorted(sources)).lower() if len(sources) <= 3 else f"{len(sources)}-coins"
    model = f"{results['model']['name']}@{results['model']['version']}"
    report = write_report(
        args.out,
        f"backtest-{name}",
        f"{', '.join(sorted(sources))}: {model}",
        results,
        predictions,
        verdicts,
    )
    print(
        f"{len(sources)} coin(s): {len(candles):,} candles, {len(verdicts):,} verdicts; "
        f"report {report}"
    )
    print(json.dumps(results))
