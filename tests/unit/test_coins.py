import re

import pytest

from cryptocast_common.coins import (
    SYMBOL_IN_ANY_CASE,
    SYMBOL_PATTERN,
    coin_names,
    coin_of,
    configured_symbol,
    symbol_of,
    symbol_of_coin_name,
    unknown_symbols,
)

CONFIGURED = ["BTC", "ETH", "XRP"]


@pytest.mark.parametrize("name", ["btc", "Btc", "BTC"])
def test_a_configured_coin_is_named_in_any_case(name: str) -> None:
    assert symbol_of(name) == "BTC"
    assert coin_of(symbol_of(name)) == "btc"
    assert configured_symbol(name, CONFIGURED) == "BTC"


@pytest.mark.parametrize("name", ["doge", "bitcoin", "BTC ", ""])
def test_anything_else_is_no_configured_symbol(name: str) -> None:
    assert configured_symbol(name, CONFIGURED) is None


def test_unknown_symbols_are_named_once_as_symbols_and_sorted() -> None:
    assert unknown_symbols(["eth", "zzb", "ZZA", "Zzb"], CONFIGURED) == ["ZZA", "ZZB"]
    assert unknown_symbols(["btc", "Eth"], CONFIGURED) == []


def test_symbol_patterns_differ_only_in_case() -> None:
    assert re.fullmatch(SYMBOL_PATTERN, "BTC") and not re.fullmatch(SYMBOL_PATTERN, "btc")
    assert re.fullmatch(SYMBOL_IN_ANY_CASE, "btc") and re.fullmatch(SYMBOL_IN_ANY_CASE, "Btc")
    for bad in ("B", "B-TC", "A" * 16):
        assert not re.fullmatch(SYMBOL_PATTERN, bad)
        assert not re.fullmatch(SYMBOL_IN_ANY_CASE, bad)


def test_alert_bodies_name_a_coin_in_lower_or_upper_case_or_by_its_coingecko_id() -> None:
    names = coin_names(CONFIGURED)
    assert names == ["btc", "eth", "xrp", "BTC", "ETH", "XRP", "bitcoin", "ethereum", "ripple"]
    assert coin_names(["btc", "eth", "xrp"]) == names
    assert [symbol_of_coin_name(n, CONFIGURED) for n in ("btc", "ETH", "ripple")] == [
        "BTC",
        "ETH",
        "XRP",
    ]


@pytest.mark.parametrize("name", ["Btc", "solana", "xrp ", "XRPL"])
def test_other_names_in_an_alert_body_are_refused(name: str) -> None:
    assert symbol_of_coin_name(name, CONFIGURED) is None
