"""The backtest replays a CSV through the service handlers and prints its scorecard."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from cryptocast.backtest import main
from cryptocast_inference.settings import LSTM_MODEL

KEYS = {
    "name",
    "version",
    "n",
    "mae",
    "rmse",
    "mape",
    "mase",
    "directional_accuracy",
    "direction_ties",
    "within_2pct",
    "coverage_80",
    "coverage_95",
    "width_80",
    "width_95",
    "brier",
    "brier_base_rate",
    "dm_vs_naive",
    "mase_ci",
}


def write_csv(path: Path, closes: list[float], bad_line: int | None = None) -> Path:
    rows = ["timestamp,open,high,low,close,volume"]
    for i, close in enumerate(closes):
        stamp = 1_767_225_600 + i * 4 * 3600  # 2026-01-01, every 4 hours
        low = -1 if i + 2 == bad_line else close * 0.99
        rows.append(f"{stamp},{close},{close * 1.01},{low},{close},5")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_naive_through_the_live_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closes = [100 * math.exp(0.01 * math.sin(i / 3)) for i in range(60)]
    data = write_csv(tmp_path / "btc.csv", closes)
    main(
        ["--data", str(data), "--symbol", "btc", "--model", "naive", "--out", str(tmp_path / "out")]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["model"]) >= KEYS
    model, naive = result["model"], result["naive"]
    assert (model["name"], model["n"]) == ("naive", 59)  # every candle but the last predicted
    assert model["mase"] == naive["mase"] == 1.0 and model["dm_vs_naive"] == 0.0
    expected_mae = sum(abs(b - a) for a, b in itertools.pairwise(closes)) / 59
    assert model["mae"] == pytest.approx(expected_mae)
    assert (tmp_path / "out" / "backtest-btc.md").is_file()


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "bad.csv", [100.0] * 10, bad_line=5)
    with pytest.raises(SystemExit) as stopped:
        main(["--data", str(data), "--symbol", "BTC", "--model", "naive"])
    assert str(stopped.value).startswith(f"cryptocast-backtest: {data}:5:")


def test_several_coins_are_pooled_relative_to_the_last_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calm = [100 * math.exp(0.001 * math.sin(i)) for i in range(40)]
    wild = [5 * math.exp(0.05 * math.sin(i)) for i in range(40)]
    calm_file = write_csv(tmp_path / "calm.csv", calm)
    wild_file = write_csv(tmp_path / "wild.csv", wild)
    main(
        [
            "--data",
            f"aaa={calm_file}",
            "--data",
            f"BBB={wild_file}",
            "--model",
            "naive",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    coins = result["coins"]
    assert set(coins) == {"AAA", "BBB"} and result["model"]["n"] == 2 * 39
    moves = [abs(b - a) / a for closes in (calm, wild) for a, b in itertools.pairwise(closes)]
    assert result["model"]["mae"] == pytest.approx(sum(moves) / len(moves))  # coins alike
    assert (tmp_path / "out" / "backtest-aaa-bbb.md").read_text().count("| AAA |") == 2


def test_the_gate_and_a_challenger_run_as_they_do_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short record (10 verdicts) judges the shipped model against no change; the previous
    # LSTM runs beside it as a challenger on real BTC candles.
    monkeypatch.setenv("CRYPTOCAST_VERIFIER_GATE_VERDICTS", "40")
    monkeypatch.setenv("CRYPTOCAST_VERIFIER_GATE_MIN_VERDICTS", "10")
    data = (
        Path(__file__).parents[2]
        / "services/ingestor/cryptocast_ingestor/data/binance/BTC_4h.csv.gz"
    )
    main(
        [
            "--data",
            f"BTC={data}",
            "--challengers",
            LSTM_MODEL,
            "--since",
            "2021-01-01",
            "--warmup",
            "130",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    served, own = result["model"], result["ungated"]
    gated = result["lifecycle"]["gated_share"]["BTC"]
    assert 0 < gated < 1  # closed for the first 10 verdicts at least, then as the record says
    assert served["n"] == own["n"] and served["mae"] != own["mae"]
    for change in result["lifecycle"]["champion_changes"]:
        assert change["kind"] in ("promoted", "demoted") and change["evidence"]["n"] >= 10
