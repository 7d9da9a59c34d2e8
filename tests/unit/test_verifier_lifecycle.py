"""The verifier's lifecycle handler: verdicts and operators' requests in, changes out."""

from collections.abc import Collection

from cryptocast_common.events import ModelChange, ModelRef, Prediction, Verification
from cryptocast_common.lifecycle import LifecyclePolicy, Lineup
from cryptocast_verifier.handlers import RETELL_SECONDS, LifecycleDeps, handle_lifecycle
from cryptocast_verifier.lifecycle_store import InMemoryLifecycleStore
from cryptocast_verifier.scoring import verify
from tests.factories import candle

CHAMPION = ModelRef(name="dist-4h", version="1")
CHALLENGER = ModelRef(name="dist-4h", version="2")


def verdict(
    i: int, model: ModelRef, role: str, miss: float, gate: str | None = None
) -> Verification:
    """Candle ``i`` closed at 100; the model said 100 + ``miss`` for the next, which closed
    at 101 (no change missed by 1)."""
    own = 100 + miss
    gated = gate == "closed"
    prediction = Prediction(
        symbol="BTC",
        interval="4h",
        based_on={"close_time": candle(i).close_time, "close": 100.0},
        target_time=candle(i + 1).close_time,
        predicted_close=100.0 if gated else own,
        model_close=own if gated else None,
        model=model,
        role=role,
        gate=gate,
    )
    return verify(prediction, 101.0, 2.0)


def deps() -> LifecycleDeps:
    return LifecycleDeps(InMemoryLifecycleStore(), LifecyclePolicy(verdicts=20, min_verdicts=10))


async def test_the_gate_opens_once_the_record_is_long_enough_and_redeliveries_count_once() -> None:
    lifecycle = deps()
    first = [verdict(i, CHAMPION, "champion", 0.8 + 0.05 * (i % 3), "closed") for i in range(9)]
    [closed] = await handle_lifecycle(first, lifecycle)  # a new coin starts on no change
    assert (closed.kind, closed.reason) == ("gate_closed", "fewer than 10 verdicts")
    assert await handle_lifecycle(first, lifecycle) == []  # the same nine again: still nine
    [opened] = await handle_lifecycle([verdict(9, CHAMPION, "champion", 0.9, "closed")], lifecycle)
    assert (opened.kind, opened.by, opened.model, opened.evidence.n) == (
        "gate_opened",
        "policy",
        CHAMPION,
        10,
    )
    assert opened.decided_at == candle(10).close_time  # the deciding verdict's target time
    lineup = await lifecycle.store.lineup("BTC", "4h")
    assert lineup.gate == "open" and lineup.champion == str(CHAMPION)


async def test_a_better_challenger_is_promoted_and_the_baseline_is_not_judged() -> None:
    lifecycle = deps()
    events = []
    for i in range(12):
        events += [
            verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed"),
            verdict(i, CHALLENGER, "challenger", 0.9 + 0.05 * (i % 2)),
            verdict(i, ModelRef(name="naive", version="1"), "baseline", 0.0),
        ]
    changes = await handle_lifecycle(events, lifecycle)
    assert [c.kind for c in changes] == ["promoted", "gate_opened"]
    assert changes[0].model == CHALLENGER and changes[0].previous == CHAMPION
    assert changes[0].evidence.against == "champion" and changes[0].evidence.dm < -1.96


async def test_an_operators_pin_is_confirmed_and_a_lagging_replica_is_told_again() -> None:
    lifecycle = deps()
    await handle_lifecycle(
        [verdict(i, CHAMPION, "champion", 0.9, "closed") for i in range(10)], lifecycle
    )
    pin = ModelChange(
        symbol="BTC",
        interval="4h",
        kind="pinned",
        model=CHALLENGER,
        by="operator",
        reason="trying the new version",
        decided_at=candle(11).close_time,
    )
    confirmed, *rest = await handle_lifecycle([pin], lifecycle)
    assert (confirmed.kind, confirmed.by, confirmed.model) == ("pinned", "policy", CHALLENGER)
    assert confirmed.event_id != pin.event_id and rest == []  # no record yet: gate closed
    lineup = await lifecycle.store.lineup("BTC", "4h")
    assert lineup.pinned and lineup.champion == str(CHALLENGER) and lineup.gate == "closed"
    # Two intervals later a replica still labels the old champion: the state is repeated.
    stale = verdict(13, CHAMPION, "champion", 0.9, "open")
    [again] = await handle_lifecycle([stale], lifecycle)
    assert again.kind == "gate_closed" and again.model == CHALLENGER
    assert again.decided_at == candle(11).close_time
    # One interval after the pin, predictions made before it are still being verified: quiet.
    assert await handle_lifecycle([verdict(11, CHAMPION, "champion", 0.9, "open")], lifecycle) == []


async def test_a_lagging_replica_is_told_the_same_state_at_most_every_few_seconds() -> None:
    now = [1000.0]
    lifecycle = deps()
    lifecycle.clock = lambda: now[0]
    await lifecycle.store.save_lineup("BTC", "4h", Lineup(champion=str(CHALLENGER)))
    # A backfill labelled by a replica that has not heard the challenger is champion.
    lagging = [verdict(i, CHAMPION, "champion", 0.9, "open") for i in range(8)]
    [decided] = await handle_lifecycle(lagging[:1], lifecycle)
    assert (decided.kind, decided.model) == ("gate_closed", CHALLENGER)
    [told] = await handle_lifecycle(lagging[3:4], lifecycle)  # made well after: told again
    assert told.event_id == decided.event_id
    assert await handle_lifecycle(lagging[4:6], lifecycle) == []  # not again at once
    now[0] += RETELL_SECONDS
    [again] = await handle_lifecycle(lagging[6:], lifecycle)
    assert again.event_id == decided.event_id


class CountingStore(InMemoryLifecycleStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def state(self, symbol: str, interval: str) -> tuple[Lineup | None, int]:
        self.reads += 1
        return await super().state(symbol, interval)

    async def states(
        self, series: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Lineup | None, int]]:
        self.reads += 1
        return await super().states(series)


async def test_the_lineup_is_kept_in_memory_and_checked_before_a_change() -> None:
    store = CountingStore()
    lifecycle = LifecycleDeps(store, LifecyclePolicy(verdicts=20, min_verdicts=10))
    # Nine verdicts in a batch: storage is read for the batch, not for each verdict.
    await handle_lifecycle(
        [verdict(i, CHAMPION, "champion", 0.9, "closed") for i in range(9)], lifecycle
    )
    assert store.reads <= 4  # the first read, the check before founding, the decision's
    # Meanwhile another verifier, active while this one stood by, promoted the challenger:
    # this one decides from that lineup, not from what it remembered.
    theirs = Lineup(champion=str(CHALLENGER), gate="closed", since=candle(8).close_time)
    await store.save_lineup("BTC", "4h", theirs)
    [opened] = await handle_lifecycle(
        [verdict(i, CHALLENGER, "champion", 0.5, "closed") for i in range(10)], lifecycle
    )
    assert (opened.kind, opened.model) == ("gate_opened", CHALLENGER)
    assert (await store.lineup("BTC", "4h")).champion == str(CHALLENGER)


async def test_a_challenger_that_missed_a_candle_is_paired_with_the_champions_older_verdicts() -> (
    None
):
    lifecycle = LifecycleDeps(
        InMemoryLifecycleStore(), LifecyclePolicy(verdicts=10, min_verdicts=10)
    )
    events = []
    for i in range(11):
        events.append(verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed"))
        if i != 7:  # a candle the challenger did not forecast
            events.append(verdict(i, CHALLENGER, "challenger", 0.9 + 0.05 * (i % 3)))
    promoted, _ = await handle_lifecycle(events, lifecycle)
    assert (promoted.kind, promoted.model, promoted.evidence.n) == ("promoted", CHALLENGER, 10)


async def test_an_unpin_applied_by_another_verifier_lets_this_one_promote() -> None:
    store = InMemoryLifecycleStore()
    here = LifecycleDeps(store, LifecyclePolicy(verdicts=20, min_verdicts=10))
    pinned = Lineup(champion=str(CHAMPION), challengers=frozenset({str(CHALLENGER)}), pinned=True)
    await store.save_lineup("BTC", "4h", pinned)
    await handle_lifecycle([verdict(0, CHAMPION, "champion", 0.9, "closed")], here)
    # The other verifier, active meanwhile, applied an operator's unpin: no verdict says so.
    await store.save_lineup(
        "BTC", "4h", Lineup(champion=str(CHAMPION), challengers=pinned.challengers)
    )
    events = []
    for i in range(1, 13):
        events += [
            verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed"),
            verdict(i, CHALLENGER, "challenger", 0.9 + 0.05 * (i % 2)),
        ]
    changes = await handle_lifecycle(events, here)
    assert changes and changes[0].kind == "promoted" and changes[0].model == CHALLENGER


async def test_verdicts_further_ahead_do_not_count_toward_the_gate() -> None:
    lifecycle = deps()
    ahead = []
    for i in range(12):
        one_step = verdict(i, CHAMPION, "champion", 0.8, "closed")
        prediction = Prediction(
            symbol="BTC",
            interval="4h",
            based_on={"close_time": candle(i).close_time, "close": 100.0},
            target_time=candle(i + 2).close_time,
            horizon=2,
            predicted_close=100.0,
            model_close=100.8,
            model=CHAMPION,
            role="champion",
            gate="closed",
        )
        ahead.append(verify(prediction, 101.0, 2.0))
        if i < 9:
            ahead.append(one_step)
    [closed] = await handle_lifecycle(ahead, lifecycle)
    # Nine one-step verdicts: twelve more two steps ahead do not make the record long enough.
    assert (closed.kind, closed.reason) == ("gate_closed", "fewer than 10 verdicts")
