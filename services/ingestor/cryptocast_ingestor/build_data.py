"""Rebuild the bundled candle data from shared/data and report what was kept and dropped.

uv run cryptocast-build-data --shared ../shared/data
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cryptocast_ingestor.datasets import (
    load_binance_4h,
    load_binance_hourly,
    load_coingecko,
    resample,
    write_bundle,
)

BUNDLE_DIR = Path(__file__).parent / "data"
# File names in shared/data/coingecko_4h: XRP's is not its CoinGecko id ("ripple", in
# cryptocast_common.coins).
COINGECKO_FILES = {"BTC": "bitcoin", "ETH": "ethereum", "SOL": "solana", "XRP": "xrp"}
BINANCE_SYMBOLS = ("BTC", "ETH", "ADA", "BNB")
# shared/data/binance_4h: 2017 .. 2025-10-23, the multi-regime history models train and are
# tested on (MATIC and XMR end at their delistings).
BINANCE_4H_SYMBOLS = (
    "ADA",
    "ATOM",
    "AVAX",
    "BNB",
    "BTC",
    "DOGE",
    "DOT",
    "ETC",
    "ETH",
    "LINK",
    "LTC",
    "MATIC",
    "PAXG",
    "SHIB",
    "SOL",
    "TRX",
    "UNI",
    "XLM",
    "XMR",
    "XRP",
)


def _rate(rows: int, started: float) -> str:
    seconds = time.perf_counter() - started
    return f"[{rows:,} rows in {seconds:.2f} s, {rows / max(seconds, 1e-9):,.0f} rows/s]"


def build(shared: Path, out: Path) -> Iterator[str]:
    """Convert file by file, yielding each file's report as soon as it is written."""
    for symbol, coin in COINGECKO_FILES.items():
        started = time.perf_counter()
        bars, report = load_coingecko(shared / "coingecko_4h" / f"{coin}.csv")
        write_bundle(bars, out / "coingecko" / f"{symbol}_4h.csv.gz")
        yield f"coingecko {symbol} 4h <- {report.summary()} {_rate(report.read, started)}"
    for symbol in BINANCE_SYMBOLS:
        started = time.perf_counter()
        hourly, report = load_binance_hourly(shared / "binance_1h" / f"{symbol}USDT_1h.csv")
        yield f"binance {symbol} 1h <- {report.summary()} {_rate(report.read, started)}"
        bars = resample(hourly, "4h", report)
        write_bundle(bars, out / "binance" / f"{symbol}_4h.csv.gz")
        yield f"binance {symbol} 4h <- {report.summary()}"
    for symbol in BINANCE_4H_SYMBOLS:
        started = time.perf_counter()
        bars, report = load_binance_4h(shared / "binance_4h" / f"{symbol}USDT_4h.csv")
        target = out / "binance_4h" / f"{symbol}_4h.csv.gz"
        write_bundle(bars, target)
        yield (
            f"binance_4h {symbol} 4h <- {report.summary()} {_rate(report.read, started)}; "
            f"{target.stat().st_size:,} bytes gzipped"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path("../shared/data"),
        help="folder with coingecko_4h/, binance_1h/ and binance_4h/ (default ../shared/data)",
    )
    parser.add_argument("--out", type=Path, default=BUNDLE_DIR)
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        sys.exit(f"error: {args.shared} is not a folder with the raw market data")
    for line in build(args.shared, args.out):
        print(line, flush=True)


if __name__ == "__main__":
    main()
