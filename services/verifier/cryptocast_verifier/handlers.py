"""Predictions and candles in, verifications out.

A prediction whose target candle is already known is verified at once; otherwise it waits in
the store until that candle arrives. Nothing is deleted when a verification is emitted (the
handler's output is only published after it returns): a redelivered candle then re-emits the
same verification id, which is harmless.

What is kept follows what may still be needed, not a count of candles: in a burst, candles
run far ahead of the predictions made from them, so a close is kept until the predictions
of its series have moved ``reorder_candles`` intervals past it. Only when predictions fall
more than ``max_closes`` intervals behind (inference down for long) are closes given up, and
a pending prediction is given up once its series is ``reorder_candles`` intervals past its
target without that candle having come (a gap in the data); both are logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from prometheus_client import Counter

from cryptocast_common.events import (
    Candle,
    Event,
    ModelChange,
    Prediction,
    Verification,
    interval_delta,
)
from cryptocast_common.lifecycle import (
    LifecyclePolicy,
    Lineup,
    Score,
    apply_request,
    current_state,
    decide,
)
from cryptocast_verifier.lifecycle_store import LifecycleStore, score_of
from cryptocast_verifier.records import Record
from cryptocast_verifier.scoring import verify
from cryptocast_verifier.store import At, VerifierStore

log = logging.getLogger(__name__)
Series = tuple[str, str]  # (symbol, interval)
T = TypeVar("T", Candle, Prediction)
TRIM_EVERY = 16  # intervals between two trims of a series' closes and pending predictions
JUDGED_ROLES = ("champion", "challenger")  # the baseline is what they are judged against
RETELL_SECONDS = 5.0  # the same state is told again to a lagging replica at most this often


@dataclass
class GiveUps:
    """What the verifier dropped while it could still have been needed."""

    closes: Counter
    predictions: Counter


@dataclass
class VerifierDeps:
    store: VerifierStore
    tolerance_pct: float
    reorder_candles: int
    max_closes: int
    given_up: GiveUps
    # Newest based-on time of a prediction and newest candle seen, per series, by this
    # process: lower bounds of the truth (after a restart, or beside replicas), so they can
    # only make it keep more, never drop what is needed.
    prediction_frontier: dict[Series, datetime] = field(default_factory=dict)
    newest_candle: dict[Series, datetime] = field(default_factory=dict)
    # When each series was last trimmed (its newest candle then): deleting scans what is
    # stored, so it is done every TRIM_EVERY intervals, not on every batch.
    trimmed_at: dict[Series, datetime] = field(default_factory=dict)


def _advance(seen: dict[Series, datetime], series: Series, moment: datetime) -> None:
    if series not in seen or moment > seen[series]:
        seen[series] = moment


def _by_series(events: Sequence[T]) -> dict[Series, list[T]]:
    grouped: dict[Series, list[T]] = defaultdict(list)
    for event in events:
        grouped[(event.symbol, event.interval)].append(event)
    return grouped


async def handle_predictions(predictions: Sequence[Prediction], deps: VerifierDeps) -> list[Event]:
    """Verify those whose target close is known; the others wait. One read and at most one
    write for the batch, whatever the series."""
    if not predictions:
        return []
    for series, group in _by_series(predictions).items():
        _advance(deps.prediction_frontier, series, max(p.based_on.close_time for p in group))
    closes = await deps.store.closes_at({_target(p) for p in predictions})
    out: list[Event] = [
        verify(p, closes[_target(p)], deps.tolerance_pct)
        for p in predictions
        if _target(p) in closes
    ]
    waiting = [p for p in predictions if _target(p) not in closes]
    if waiting:
        await deps.store.add_pending(waiting)
    return out


def _target(prediction: Prediction) -> At:
    return (prediction.symbol, prediction.interval, prediction.target_time)


async def handle_candles(candles: Sequence[Candle], deps: VerifierDeps) -> list[Event]:
    """Verify the predictions waiting for these closes (one read for the batch), then forget
    what is no longer needed. The closes themselves are stored first, by ``handle``."""
    if not candles:
        return []
    close_of = {(c.symbol, c.interval, c.close_time): c.close for c in candles}
    pending = await deps.store.pending_for(list(close_of))
    out: list[Event] = [verify(p, close_of[_target(p)], deps.tolerance_pct) for p in pending]
    for series, group in _by_series(candles).items():
        await _forget(series, max(c.close_time for c in group), deps)
    return out


async def _forget(series: Series, newest_close: datetime, deps: VerifierDeps) -> None:
    symbol, interval = series
    _advance(deps.newest_candle, series, newest_close)
    step = interval_delta(interval)
    newest = deps.newest_candle[series]
    last_trim = deps.trimmed_at.get(series)
    if last_trim is not None and newest - last_trim < TRIM_EVERY * step:
        return
    deps.trimmed_at[series] = newest
    # Pending predictions first, while the closes they were verified with are still there:
    # a verified one stays pending (a redelivered candle must find it again), so only one
    # whose target close is missing was given up.
    targets = await deps.store.forget_pending_before(*series, newest - deps.reorder_candles * step)
    if targets:  # one per prediction: several models can wait for the same close
        known = await deps.store.closes_at({(symbol, interval, target) for target in targets})
        unmatched = sum((symbol, interval, target) not in known for target in targets)
    else:
        unmatched = 0
    if unmatched:
        deps.given_up.predictions.inc(unmatched)
        log.warning(
            "predictions given up: their target candle never came",
            extra={"symbol": symbol, "interval": interval, "count": unmatched},
        )
    frontier = deps.prediction_frontier.get(series)
    # Never past the pending cutoff above, so that check always finds the closes it needs.
    unneeded = None if frontier is None else min(frontier, newest) - deps.reorder_candles * step
    too_old = newest - (deps.max_closes - 1) * step  # keeps max_closes of them
    if unneeded is None or too_old > unneeded:
        dropped = await deps.store.forget_closes_before(*series, too_old)
        if dropped:
            deps.given_up.closes.inc(dropped)
            log.warning(
                "closes given up before their predictions came",
                extra={"symbol": symbol, "interval": interval, "count": dropped},
            )
    if unneeded is not None:
        await deps.store.forget_closes_before(*series, unneeded)


async def handle(events: Sequence[Event], deps: VerifierDeps) -> list[Event]:
    """A batch in a few round trips, whatever the number of series it spans (and, every
    ``TRIM_EVERY`` intervals of a series, its trim): its closes are stored first, so a
    prediction and its target candle in one batch meet at once."""
    candles = [e for e in events if isinstance(e, Candle)]
    if candles:
        await deps.store.save_closes(candles)
    out = await handle_predictions([e for e in events if isinstance(e, Prediction)], deps)
    return out + await handle_candles(candles, deps)


@dataclass
class LifecycleDeps:
    """What the lifecycle handler keeps between batches.

    **Lineups.** Each series' lineup as this verifier last read or decided it: read from
    storage once, then kept up to date by the changes this verifier makes. Before it writes or
    announces anything it checks the stored one, which another verifier may have changed while
    this one stood by (the lifecycle queue has one active consumer, not always the same).

    **Scores.** Each judged model's recent scores per series (``records``), read from storage
    once and then added to as this verifier stores verdicts, so a batch does not read every
    model's last ``policy.verdicts`` back. What keeps them sound is the series' revision, a
    count of score writes that storage keeps with the lineup and that every ``add_scores``
    raises by one, after writing the scores (see ``lifecycle_store``):

    *A verifier decides on the scores it holds for a series only while the revision stored
    with the lineup equals the one it expects: the one it last read there plus one for each
    of its own ``add_scores`` to the series since. Any other value, or an ``add_scores`` of
    its own that failed, means scores it has not seen may be stored: it forgets the series'
    scores and reads them again from storage.*

    Counts only grow, so another writer's scores always show, however writes interleave (a
    previous consumer still finishing its batch included); the revision is read with the
    lineup, which is read anyway before deciding (every series of a batch in one request), so
    checking it costs nothing. Reading scores after the revision, or a revision raised twice by a
    redelivery, only makes it read again, never decide on less. (A verifier of an earlier
    release counts nothing: one that is active again after this release's was must not
    happen; an upgrade that stops the old ones before the new one takes over is safe, since
    it starts with nothing in memory.)

    **Repeats.** A champion's verdict labelled with an older state comes from a replica that
    missed a change: the state is published again, but the same state at most once every
    ``RETELL_SECONDS`` per series. In a fast backfill inference has labelled many candles
    before the change reaches it, and telling it again on each of their verdicts told it
    nothing new (1,400 repeats of 1,500 changes in a 20-coin backfill).
    """

    store: LifecycleStore
    policy: LifecyclePolicy
    lineups: dict[Series, Lineup | None] = field(default_factory=dict)
    # The revision of each series' scores that ``records`` reflects, and the records.
    revisions: dict[Series, int] = field(default_factory=dict)
    records: dict[Series, dict[str, Record]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    # The state last told again per series (its event id), and when.
    retold: dict[Series, tuple[str, float]] = field(default_factory=dict)


async def _lineup(deps: LifecycleDeps, series: Series) -> Lineup | None:
    if series not in deps.lineups:
        await _fresh(deps, series)
    return deps.lineups[series]


async def _fresh(deps: LifecycleDeps, series: Series) -> Lineup | None:
    """The stored lineup, which this verifier believes from now on; and the scores it holds
    for the series, forgotten if they may be stale (see ``LifecycleDeps``)."""
    return _believe(deps, series, *await deps.store.state(*series))


async def _fresh_all(deps: LifecycleDeps, series: Collection[Series]) -> None:
    """``_fresh`` for every one of these series, in one read."""
    for one, (lineup, revision) in (await deps.store.states(series)).items():
        _believe(deps, one, lineup, revision)


def _believe(
    deps: LifecycleDeps, series: Series, lineup: Lineup | None, revision: int
) -> Lineup | None:
    if deps.revisions.get(series) != revision:
        deps.records.pop(series, None)
        deps.revisions[series] = revision
    deps.lineups[series] = lineup
    return lineup


async def _stored_is(deps: LifecycleDeps, series: Series, believed: Lineup | None) -> bool:
    """Whether storage holds the lineup this verifier believes in; if not, believe storage."""
    return await _fresh(deps, series) == believed


async def _save(deps: LifecycleDeps, series: Series, lineup: Lineup) -> None:
    await deps.store.save_lineup(*series, lineup)
    deps.lineups[series] = lineup


async def _add_scores(deps: LifecycleDeps, verdicts: Sequence[Verification]) -> None:
    """Store the verdicts' scores, and add them to the records held."""
    touched = {(v.symbol, v.interval) for v in verdicts}
    try:
        await deps.store.add_scores(verdicts)
    except BaseException:
        for series in touched:  # written or not, counted or not: read them again
            deps.revisions.pop(series, None)
            deps.records.pop(series, None)
        raise
    for series in touched & deps.revisions.keys():
        deps.revisions[series] += 1
    for verdict in verdicts:
        held = deps.records.get((verdict.symbol, verdict.interval), {})
        if (record := held.get(str(verdict.model))) is not None:
            record.add([score_of(verdict)])


async def _records(deps: LifecycleDeps, series: Series, lineup: Lineup) -> dict[str, list[Score]]:
    """Each model's last verdicts, and the champion's on every candle a challenger's hold:
    from memory, reading from storage only what it does not hold."""
    n = deps.policy.verdicts
    models = lineup.challengers | {lineup.champion}
    held = deps.records.setdefault(series, {})
    for model in set(held) - models:
        del held[model]
    for model in sorted(models - set(held)):
        held[model] = Record.loaded(await deps.store.recent(*series, model, n), n)
    records = {m: held[m].newest(n) for m in lineup.challengers}
    champion = held[lineup.champion]
    theirs = {s.target_time for c in lineup.challengers for s in records[c]}
    missing = sorted(t for t in theirs if not champion.holds(t))
    if missing:
        champion.look_up(missing, await deps.store.scores_at(*series, lineup.champion, missing))
    newest = champion.newest(n)
    older = champion.at(theirs - {s.target_time for s in newest})
    for model, record in held.items():
        record.trim(n, min(theirs) if theirs and model == lineup.champion else None)
    return records | {lineup.champion: sorted([*older, *newest], key=lambda s: s.target_time)}


async def handle_lifecycle(events: Sequence[Event], deps: LifecycleDeps) -> list[Event]:
    """Verdicts and operators' requests in, the lifecycle changes they lead to out.

    Runs on a single-active-consumer queue, so one verifier decides at a time. A champion
    prediction made well after the last change, yet labelled otherwise, comes from a replica
    that missed that change: the current state is published again (same event id)."""
    out: list[Event] = []
    decide_at: dict[Series, datetime] = {}
    stale: set[Series] = set()
    for event in events:
        if isinstance(event, ModelChange) and event.by == "operator":
            series = (event.symbol, event.interval)
            lineup = await _fresh(deps, series) or Lineup(champion=str(event.model))
            lineup, confirmed = apply_request(lineup, event)
            await _save(deps, series, lineup)
            out.append(confirmed)
            _advance(decide_at, series, event.decided_at)
    # The policy judges one-step forecasts: verdicts further ahead overlap in time and would
    # count the same moves several times.
    verdicts = [
        e
        for e in events
        if isinstance(e, Verification) and e.role in JUDGED_ROLES and e.horizon == 1
    ]
    await _add_scores(deps, verdicts)
    for verdict in verdicts:
        series = (verdict.symbol, verdict.interval)
        known = await _lineup(deps, series)
        model = str(verdict.model)
        if known is None and verdict.role != "champion":
            continue  # the champion's first verdict founds the lineup
        lineup = known or Lineup(champion=model)
        if verdict.role == "challenger":
            lineup = replace(lineup, challengers=lineup.challengers | {model})
        if lineup != known:
            if not await _stored_is(deps, series, known):
                continue  # another verifier's lineup, now this one's: the next verdict counts
            await _save(deps, series, lineup)
        _advance(decide_at, series, verdict.target_time)
        labelled = (model, verdict.gate)
        if verdict.role == "champion" and labelled != (lineup.champion, lineup.gate):
            step = interval_delta(verdict.interval)
            if lineup.since is None or verdict.based_on_time > lineup.since + step:
                stale.add(series)
    # Storage is read first, for every series to decide at once: another verifier may have
    # applied an operator's pin or block meanwhile, which no verdict's label would reveal, or
    # stored scores (see LifecycleDeps).
    await _fresh_all(deps, list(decide_at))
    for series, now in decide_at.items():
        out += await _decide(deps, series, now, series in stale)
    return out


def _retell(deps: LifecycleDeps, series: Series, state: ModelChange) -> list[Event]:
    """The current state again, unless it was told again for the series just now."""
    now = deps.clock()
    told = deps.retold.get(series)
    if told is not None and told[0] == state.event_id and now - told[1] < RETELL_SECONDS:
        return []
    deps.retold[series] = (state.event_id, now)
    return [state]


async def _decide(deps: LifecycleDeps, series: Series, now: datetime, stale: bool) -> list[Event]:
    """The series' changes after its latest verdicts, or its current state again for a
    replica that missed it; decided afresh if storage turns out to hold another lineup. The
    stored lineup was read just before, by ``handle_lifecycle``."""
    while (lineup := await _lineup(deps, series)) is not None:
        records = await _records(deps, series, lineup)
        decided, changes = decide(*series, lineup, records, deps.policy, now)
        if not (changes or (stale and decided.since is not None)):
            return []
        if not await _stored_is(deps, series, lineup):
            continue
        if not changes:
            return _retell(deps, series, current_state(*series, decided))
        await _save(deps, series, decided)
        for change in changes:
            log.info(
                "model lifecycle: %s %s",
                change.kind,
                change.model,
                extra={
                    "symbol": change.symbol,
                    "interval": change.interval,
                    "reason": change.reason,
                },
            )
        return list(changes)
    return []
