"""The lifecycle policy on live records built to a known verdict."""

from datetime import UTC, datetime, timedelta

from cryptocast_common.events import ModelChange, ModelRef
from cryptocast_common.lifecycle import (
    NAIVE,
    LifecyclePolicy,
    Lineup,
    Score,
    current_state,
    decide,
    follow,
    head_to_head,
    judge,
    lineup_from,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = LifecyclePolicy(verdicts=100, min_verdicts=40)
CHAMPION, CHALLENGER = "dist-4h@1", "dist-4h@2"


def record(n: int, ratio: float, wobble: float = 0.2) -> list[Score]:
    """``n`` verdicts whose errors are ``ratio`` times no change's, give or take ``wobble``."""
    scores = []
    for i in range(n):
        naive = 1.0 + (i % 5) * 0.3
        sign = 1 if i % 2 else -1
        scores.append(Score(T0 + timedelta(hours=4 * i), naive * (ratio + sign * wobble), naive))
    return scores


def test_judge_by_hand() -> None:
    # Errors 2 and 1 against no change's 1 and 1: MAE ratio 3/2; too few for a verdict on
    # significance to matter, but the statistic is defined.
    evidence = judge([Score(T0, 2.0, 1.0), Score(T0 + timedelta(hours=4), 1.0, 1.0)])
    assert evidence.n == 2 and evidence.mae_ratio == 1.5 and evidence.against == "naive"
    assert judge([]).dm is None and judge([Score(T0, 1.0, 0.0)] * 3).mae_ratio is None


def test_a_new_symbol_starts_on_no_change_until_its_record_is_long_enough() -> None:
    lineup = Lineup(champion=CHAMPION)
    lineup, [closed] = decide("BTC", "4h", lineup, {CHAMPION: record(39, 1.0)}, POLICY, T0)
    assert lineup.gate == "closed" and closed.kind == "gate_closed"  # the first state is news
    assert "fewer than 40 verdicts" in closed.reason
    assert decide("BTC", "4h", lineup, {CHAMPION: record(39, 1.0)}, POLICY, T0)[1] == []
    lineup, [opened] = decide("BTC", "4h", lineup, {CHAMPION: record(40, 1.0)}, POLICY, T0)
    assert lineup.gate == "open" and lineup.since == T0
    assert opened.kind == "gate_opened" and opened.evidence.n == 40


def test_the_gate_closes_on_a_record_significantly_worse_than_no_change() -> None:
    lineup = Lineup(champion=CHAMPION, gate="open", since=T0)
    lineup, [closed] = decide("BTC", "4h", lineup, {CHAMPION: record(100, 1.3)}, POLICY, T0)
    assert lineup.gate == "closed" and closed.kind == "gate_closed"
    assert closed.evidence.dm > 1.96 and "worse than no change" in closed.reason
    # Slightly worse but not significantly: the gate stays open.
    lineup = Lineup(champion=CHAMPION, gate="open", since=T0)
    assert decide("BTC", "4h", lineup, {CHAMPION: record(100, 1.01, 0.5)}, POLICY, T0)[1] == []


def test_a_significantly_better_challenger_is_promoted_on_the_same_candles() -> None:
    lineup = Lineup(champion=CHAMPION, gate="open", challengers=frozenset({CHALLENGER}))
    records = {CHAMPION: record(100, 1.0), CHALLENGER: record(100, 0.8)}
    assert head_to_head(records[CHALLENGER], records[CHAMPION]).dm < -1.96
    lineup, changes = decide("BTC", "4h", lineup, records, POLICY, T0)
    assert [c.kind for c in changes] == ["promoted", "gate_opened"]
    assert str(changes[0].model) == CHALLENGER and str(changes[0].previous) == CHAMPION
    assert changes[0].evidence.against == "champion" and lineup.champion == CHALLENGER
    # Pinned, the champion stays whatever the challenger does; blocked, it never serves.
    pinned = Lineup(champion=CHAMPION, pinned=True, challengers=frozenset({CHALLENGER}))
    assert decide("BTC", "4h", pinned, records, POLICY, T0)[0].champion == CHAMPION
    blocked = Lineup(
        champion=CHAMPION, blocked=frozenset({CHALLENGER}), challengers=frozenset({CHALLENGER})
    )
    assert decide("BTC", "4h", blocked, records, POLICY, T0)[0].champion == CHAMPION


def test_a_challenger_is_judged_on_its_own_last_verdicts_even_beside_a_candle_it_missed() -> None:
    # As many verdicts as the record holds for each (verdicts == min_verdicts, what setting
    # only CRYPTOCAST_VERIFIER_GATE_VERDICTS below 60 gives), the challenger better on every
    # candle, but it missed one the champion was verified on: the champion's last 40 then
    # share only 39 candles with the challenger's last 40, and no promotion ever came while
    # that candle was among the champion's last 40.
    policy = LifecyclePolicy(verdicts=40, min_verdicts=40)
    champion = record(41, 1.0)
    missed = champion[30].target_time
    challenger = [s for s in record(41, 0.5, 0.1) if s.target_time != missed]
    lineup = Lineup(champion=CHAMPION, challengers=frozenset({CHALLENGER}))
    records = {CHAMPION: champion, CHALLENGER: challenger}
    lineup, changes = decide("BTC", "4h", lineup, records, policy, T0)
    assert changes[0].kind == "promoted" and changes[0].evidence.n == 40
    assert lineup.champion == CHALLENGER


def test_a_blocked_champion_gives_way_to_the_healthiest_of_several_challengers() -> None:
    # Ranking them compared Evidence objects, which do not order: a TypeError on every batch.
    other = "dist-4h@3"
    lineup = Lineup(
        champion=CHAMPION,
        blocked=frozenset({CHAMPION}),
        challengers=frozenset({CHALLENGER, other}),
    )
    records = {CHAMPION: record(100, 1.0), CHALLENGER: record(100, 0.9), other: record(100, 0.8)}
    lineup, changes = decide("BTC", "4h", lineup, records, POLICY, T0)
    assert lineup.champion == other and changes[0].evidence.mae_ratio < 0.85


def test_a_champion_worse_than_no_change_gives_way_to_a_healthy_challenger() -> None:
    lineup = Lineup(champion=CHAMPION, gate="open", challengers=frozenset({CHALLENGER}))
    # Not better than the champion by the head-to-head rule's margin on these candles
    # (different candles: no pairs), but healthy against no change.
    late = [
        Score(s.target_time + timedelta(days=400), s.model_error, s.naive_error)
        for s in record(100, 1.0)
    ]
    records = {CHAMPION: record(100, 1.3), CHALLENGER: late}
    lineup, changes = decide("BTC", "4h", lineup, records, POLICY, T0)
    assert changes[0].kind == "demoted" and lineup.champion == CHALLENGER
    assert "significantly worse than no change" in changes[0].reason


def test_a_blocked_champion_is_replaced_by_no_change_when_no_challenger_is_healthy() -> None:
    lineup = Lineup(champion=CHAMPION, gate="open", blocked=frozenset({CHAMPION}))
    lineup, changes = decide("BTC", "4h", lineup, {CHAMPION: record(100, 1.0)}, POLICY, T0)
    assert lineup.champion == NAIVE and changes[0].kind == "demoted"
    assert "blocked" in changes[0].reason


def test_the_current_state_repeats_the_deciding_event_with_its_id() -> None:
    lineup = Lineup(champion=CHAMPION, since=T0)
    lineup, [opened] = decide("BTC", "4h", lineup, {CHAMPION: record(50, 1.0)}, POLICY, T0)
    assert current_state("BTC", "4h", lineup).event_id == opened.event_id


def test_the_stored_changes_rebuild_the_lineup() -> None:
    lineup = Lineup(champion=CHAMPION, challengers=frozenset({CHALLENGER}))
    records = {CHAMPION: record(100, 1.0), CHALLENGER: record(100, 0.8)}
    decided, changes = decide("BTC", "4h", lineup, records, POLICY, T0)
    rebuilt = lineup_from(changes)
    assert (rebuilt.champion, rebuilt.gate, rebuilt.since) == (CHALLENGER, "open", T0)
    assert rebuilt.champion == decided.champion and lineup_from([]) is None


def test_followers_read_only_the_policys_changes_and_need_a_champion_first() -> None:
    blocked = ModelChange(
        symbol="BTC",
        interval="4h",
        kind="blocked",
        model=ModelRef.parse(CHALLENGER),
        by="policy",
        reason="",
        decided_at=T0,
    )
    assert follow(None, blocked) is None  # a block names the blocked model, not the champion
    lineup = Lineup(champion=CHAMPION)
    assert follow(lineup, blocked).blocked == {CHALLENGER}
    asked = blocked.model_copy(update={"by": "operator", "kind": "pinned"})
    assert follow(lineup, asked) == lineup  # counts once the policy confirms it
