"""The lifecycle handler's scores in memory: a batch reads no model's last verdicts back, yet
it decides as if it had, whoever else wrote meanwhile."""

import random
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime

import pytest

from cryptocast_common.events import ModelRef, Verification
from cryptocast_common.lifecycle import LifecyclePolicy, Lineup, Score
from cryptocast_verifier.handlers import LifecycleDeps, _fresh, _records, handle_lifecycle
from cryptocast_verifier.lifecycle_store import InMemoryLifecycleStore, LifecycleStore
from cryptocast_verifier.records import Record
from tests.factories import candle
from tests.unit.test_verifier_lifecycle import CHALLENGER, CHAMPION, verdict

SERIES = ("BTC", "4h")
POLICY = LifecyclePolicy(verdicts=20, min_verdicts=10)


class CountingStore(InMemoryLifecycleStore):
    """Counts the reads a handler makes: each is a round trip to MongoDB."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def recent(self, symbol: str, interval: str, model: str, n: int) -> list[Score]:
        self.calls["recent"] += 1
        return await super().recent(symbol, interval, model, n)

    async def scores_at(
        self, symbol: str, interval: str, model: str, times: Sequence[datetime]
    ) -> list[Score]:
        self.calls["scores_at"] += 1
        return await super().scores_at(symbol, interval, model, times)

    async def state(self, symbol: str, interval: str) -> tuple[Lineup | None, int]:
        self.calls["state"] += 1
        return await super().state(symbol, interval)

    async def states(
        self, series: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Lineup | None, int]]:
        self.calls["states"] += 1
        return await super().states(series)


async def from_storage(store: LifecycleStore, lineup: Lineup, n: int) -> dict[str, list[Score]]:
    """What the handler read from storage for every batch before it kept scores in memory."""
    records = {m: await store.recent(*SERIES, m, n) for m in lineup.challengers}
    champion = await store.recent(*SERIES, lineup.champion, n)
    theirs = {s.target_time for c in lineup.challengers for s in records[c]}
    missing = theirs - {s.target_time for s in champion}
    older = await store.scores_at(*SERIES, lineup.champion, sorted(missing))
    return records | {lineup.champion: sorted([*older, *champion], key=lambda s: s.target_time)}


def good(i: int, gate: str = "closed") -> Verification:
    return verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), gate)


async def test_a_batch_reads_no_scores_back_once_they_are_held() -> None:
    store = CountingStore()
    lifecycle = LifecycleDeps(store, POLICY)
    await handle_lifecycle([good(i) for i in range(5)], lifecycle)
    assert store.calls["recent"] == 1  # the champion's record, read once
    store.calls.clear()
    for i in range(5, 40):
        await handle_lifecycle([good(i, "open" if i >= 10 else "closed")], lifecycle)
    assert store.calls["recent"] == store.calls["scores_at"] == 0
    # The lineup's read, once per batch, carries the revision; and the check before the
    # gate opened, once.
    assert (store.calls["states"], store.calls["state"]) == (35, 1)
    lineup = await store.lineup(*SERIES)
    assert lineup is not None and lineup.gate == "open"
    assert await _records(lifecycle, SERIES, lineup) == await from_storage(store, lineup, 20)
    assert len(lifecycle.records[SERIES][str(CHAMPION)].scores) < 2 * 20  # trimmed as it goes


async def test_the_lineups_and_revisions_of_a_batchs_series_are_read_at_once() -> None:
    store = CountingStore()
    lifecycle = LifecycleDeps(store, POLICY)
    coins = ("BTC", "ETH", "SOL")
    batch = [good(i).model_copy(update={"symbol": s}) for s in coins for i in range(12)]
    changes = await handle_lifecycle(batch, lifecycle)
    assert sorted((c.symbol, c.kind) for c in changes) == [(s, "gate_opened") for s in coins]
    store.calls.clear()
    batch = [good(i, "open").model_copy(update={"symbol": s}) for s in coins for i in (12, 13)]
    assert await handle_lifecycle(batch, lifecycle) == []
    assert store.calls == {"states": 1}  # nothing else: lineups and scores were held


async def test_scores_another_verifier_wrote_are_read_again_before_deciding() -> None:
    """The queue's active consumer moves to another verifier and back: the scores it stored
    meanwhile (no change of lineup to tell) count in this verifier's next decision."""
    store = InMemoryLifecycleStore()
    here, there = LifecycleDeps(store, POLICY), LifecycleDeps(store, POLICY)
    [closed] = await handle_lifecycle([good(i) for i in range(5)], here)
    assert closed.kind == "gate_closed"
    # The other one, active meanwhile: four more, still fewer than 10, so no change stored.
    assert await handle_lifecycle([good(i) for i in range(5, 9)], there) == []
    assert await store.lineup(*SERIES) == Lineup(champion=str(CHAMPION), since=closed.decided_at)
    # Back here: with what it held (six) it would stay quiet; storage holds ten.
    [opened] = await handle_lifecycle([good(9)], here)
    assert (opened.kind, opened.evidence.n) == ("gate_opened", 10)


async def test_another_verifier_writing_between_this_ones_writes_is_noticed() -> None:
    """Writes interleaved (a previous consumer still finishing a batch): this verifier's own
    writes raise the revision too, yet never hide the other's."""
    store = InMemoryLifecycleStore()
    here = LifecycleDeps(store, POLICY)
    await handle_lifecycle([good(i) for i in range(5)], here)
    # The other's write, after this one last read and before this one writes again.
    await store.add_scores([good(i) for i in range(5, 9)])
    [opened] = await handle_lifecycle([good(9)], here)
    assert (opened.kind, opened.evidence.n) == ("gate_opened", 10)


class FailingCount(InMemoryLifecycleStore):
    """Writes the scores, then fails before their revision is counted (the connection lost)."""

    fail = False

    async def add_scores(self, verifications: Sequence[Verification]) -> None:
        if not self.fail:
            return await super().add_scores(verifications)
        for v in verifications:
            self.scores[(v.symbol, v.interval, str(v.model))][v.event_id] = Score(
                v.target_time, v.own_error_pct, v.naive_error_pct
            )
        raise ConnectionError("lost after the scores were written")


async def test_a_failed_write_of_scores_makes_this_verifier_read_them_again() -> None:
    store = FailingCount()
    lifecycle = LifecycleDeps(store, POLICY)
    await handle_lifecycle([good(i) for i in range(5)], lifecycle)
    store.fail = True
    with pytest.raises(ConnectionError):  # the batch is not acked, and may never come back
        await handle_lifecycle([good(i) for i in range(5, 9)], lifecycle)
    store.fail = False
    [opened] = await handle_lifecycle([good(9)], lifecycle)
    assert (opened.kind, opened.evidence.n) == ("gate_opened", 10)


async def test_redelivered_verdicts_count_once() -> None:
    lifecycle = LifecycleDeps(InMemoryLifecycleStore(), POLICY)
    first = [good(i) for i in range(9)]
    [closed] = await handle_lifecycle(first + first[:3], lifecycle)  # three twice in a batch
    assert closed.evidence is not None and closed.evidence.n == 9
    assert await handle_lifecycle(first, lifecycle) == []  # the batch again: still nine
    assert await handle_lifecycle(first[4:], lifecycle) == []
    [opened] = await handle_lifecycle([good(9), good(2)], lifecycle)
    assert opened.evidence.n == 10


async def test_verdicts_out_of_order_take_their_place_and_only_the_newest_count() -> None:
    store = InMemoryLifecycleStore()
    lifecycle = LifecycleDeps(store, POLICY)
    [closed] = await handle_lifecycle([good(i) for i in range(41, 50)], lifecycle)
    assert closed.evidence is not None and closed.evidence.n == 9
    [opened] = await handle_lifecycle([good(40)], lifecycle)  # late: older than those held
    assert (opened.kind, opened.evidence.n) == ("gate_opened", 10)
    earlier = [good(i, "open") for i in reversed(range(30, 40))]
    assert await handle_lifecycle(earlier, lifecycle) == []
    # Much older verdicts, and terrible: older than the last 20, they do not count.
    old = [verdict(i, CHAMPION, "champion", 5.0, "closed") for i in range(20)]
    assert await handle_lifecycle(old, lifecycle) == []
    lineup = await store.lineup(*SERIES)
    assert lineup is not None
    held = await _records(lifecycle, SERIES, lineup)
    assert held == await from_storage(store, lineup, 20)
    assert [s.target_time for s in held[str(CHAMPION)]] == [
        candle(i + 1).close_time for i in range(30, 50)
    ]


async def test_the_champions_scores_on_a_challengers_candles_come_out_right() -> None:
    """A challenger that missed candles is paired with the champion's older verdicts, which
    the champion's own last ones no longer include: looked up, then held."""
    store = CountingStore()
    policy = LifecyclePolicy(verdicts=10, min_verdicts=10)
    lifecycle = LifecycleDeps(store, policy)

    def batch(i: int) -> list[Verification]:
        verdicts = [verdict(i, CHAMPION, "champion", 0.5 + 0.1 * (i % 2), "closed")]
        if i % 4 != 3:  # the challenger skips every fourth candle
            verdicts.append(verdict(i, CHALLENGER, "challenger", 0.9 + 0.05 * (i % 3)))
        return verdicts

    # Stored before this verifier took over: it reads the last ten of each, and looks up the
    # champion's on the challenger's older candles.
    await store.add_scores([v for i in range(20) for v in batch(i)])
    await store.save_lineup(
        *SERIES, Lineup(champion=str(CHAMPION), challengers=frozenset({str(CHALLENGER)}))
    )
    for i in range(20, 60):
        await handle_lifecycle(batch(i), lifecycle)
        lineup = await store.lineup(*SERIES)
        assert lineup is not None
        held = await _records(lifecycle, SERIES, lineup)
        reads = store.calls.copy()
        assert held == await from_storage(store, lineup, policy.verdicts)
        store.calls = reads  # the handler's reads only
    assert store.calls["recent"] == 2  # each model's, once
    assert store.calls["scores_at"] == 1  # then held, and added to


async def test_held_records_match_storage_whatever_the_order_and_whoever_writes() -> None:
    """Two verifiers taking turns, batches of verdicts out of order, redelivered, of a
    champion and two challengers with gaps: after every batch, what the active verifier
    holds is what storage would have given it."""
    rng = random.Random(20261203)
    store = InMemoryLifecycleStore()
    policy = LifecyclePolicy(verdicts=12, min_verdicts=6)
    verifiers = [LifecycleDeps(store, policy), LifecycleDeps(store, policy)]
    other = ModelRef(name="dist-4h", version="3")
    everything = []
    for i in range(120):
        everything.append(verdict(i, CHAMPION, "champion", rng.uniform(0.3, 1.5), "closed"))
        for model in (CHALLENGER, other):
            if rng.random() < 0.8:
                everything.append(verdict(i, model, "challenger", rng.uniform(0.2, 1.6)))
    sent = 0
    active = verifiers[0]
    while sent < len(everything):
        size = rng.randint(1, 15)
        batch = everything[sent : sent + size]
        sent += size
        if rng.random() < 0.3:  # some verdicts redelivered, some from further back
            batch += rng.sample(everything[:sent], k=min(sent, rng.randint(1, 5)))
        rng.shuffle(batch)
        if rng.random() < 0.2:
            active = verifiers[1] if active is verifiers[0] else verifiers[0]
        await handle_lifecycle(batch, active)
        lineup = await _fresh(active, SERIES)
        if lineup is None:
            continue
        assert await _records(active, SERIES, lineup) == await from_storage(
            store, lineup, policy.verdicts
        )


def test_a_record_trims_back_to_what_it_needs_and_keeps_what_it_knows() -> None:
    scores = [Score(candle(i).close_time, 1.0, 1.0) for i in range(10)]
    record = Record.loaded(scores[5:], 5)  # storage's last five of ten
    assert record.since == scores[5].target_time
    assert not record.holds(scores[4].target_time) and record.holds(scores[7].target_time)
    record.look_up([scores[1].target_time, scores[2].target_time], [scores[1]])
    assert record.holds(scores[2].target_time) and record.at([scores[2].target_time]) == []
    record.add(Score(candle(i).close_time, 2.0, 1.0) for i in range(10, 18))
    record.trim(5, keep_from=scores[7].target_time)
    assert record.since == scores[7].target_time and not record.looked_up
    assert min(record.scores) == scores[7].target_time
    assert record.newest(5) == [Score(candle(i).close_time, 2.0, 1.0) for i in range(13, 18)]
    assert Record.loaded(scores[:3], 5).since is None  # fewer than asked for: all of them
