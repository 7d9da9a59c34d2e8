"""The model lifecycle policy: which model serves each symbol, and whether it serves its own
point forecast or no change (the live-skill gate).

Pure functions of the live record: the verifier's lifecycle handler feeds them the last
verdicts and publishes the changes they return, inference applies those changes, and the
backtest runs the very same code on its simulated clock.

- **Gate.** The champion serves its own point forecast only while its last ``verdicts``
  verified predictions on the symbol number at least ``min_verdicts`` and are not
  significantly worse than no change (Diebold-Mariano on absolute errors, statistic below
  ``critical``). Otherwise the symbol is served no change, with the model's intervals, until
  the record recovers. A new symbol, or a new champion, starts closed.
- **Promotion.** A challenger whose errors on the same candles are significantly below the
  champion's (statistic below ``-critical`` over at least ``min_verdicts`` pairs) becomes
  champion. So does the challenger with the best record when the champion is significantly
  worse than no change and that challenger is not.
- **Operators** pin a champion (no promotion while pinned; the gate still applies) or block a
  version (never champion; a blocked champion is replaced at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from cryptocast_common.events import ChangeKind, Evidence, Gate, ModelChange, ModelRef
from cryptocast_common.significance import diebold_mariano

NAIVE = "naive@1"
DM_CAP = 99.0


@dataclass(frozen=True)
class Score:
    """One verdict as the policy sees it: absolute errors in percent of the last close."""

    target_time: datetime
    model_error: float  # of the model's own point forecast, gated or not
    naive_error: float


@dataclass(frozen=True)
class LifecyclePolicy:
    verdicts: int = 120  # the live record: the last N verified predictions per model and symbol
    min_verdicts: int = 60  # fewer: the gate stays closed and nothing is promoted
    critical: float = 1.96  # two-sided 5%


@dataclass(frozen=True)
class Lineup:
    """The lifecycle state of one symbol and interval."""

    champion: str  # name@version
    gate: Gate = "closed"
    since: datetime | None = None  # when the champion's current gate state was decided
    pinned: bool = False
    blocked: frozenset[str] = frozenset()
    challengers: frozenset[str] = field(default=frozenset())


def to_document(lineup: Lineup) -> dict[str, Any]:
    """The lineup as a MongoDB document's fields (sets as sorted lists)."""
    return asdict(lineup) | {
        "blocked": sorted(lineup.blocked),
        "challengers": sorted(lineup.challengers),
    }


def from_document(doc: Mapping[str, Any]) -> Lineup:
    return Lineup(
        champion=doc["champion"],
        gate=doc["gate"],
        since=doc["since"],
        pinned=doc["pinned"],
        blocked=frozenset(doc["blocked"]),
        challengers=frozenset(doc["challengers"]),
    )


def judge(scores: Sequence[Score], reference: Sequence[float] | None = None) -> Evidence:
    """The record against no change, or against ``reference`` errors on the same candles."""
    mine = [s.model_error for s in scores]
    other = [s.naive_error for s in scores] if reference is None else list(reference)
    against = "naive" if reference is None else "champion"
    if len(mine) < 2 or sum(other) == 0:
        return Evidence(n=len(mine), mae_ratio=None, dm=None, against=against)
    dm = diebold_mariano(mine, other).statistic
    # A constant difference has no variance: as significant as it gets, and finite for JSON.
    dm = max(-DM_CAP, min(DM_CAP, dm))
    return Evidence(n=len(mine), mae_ratio=sum(mine) / sum(other), dm=dm, against=against)


def head_to_head(challenger: Sequence[Score], champion: Sequence[Score]) -> Evidence:
    """The challenger against the champion on the candles both were verified on."""
    theirs = {s.target_time: s.model_error for s in champion}
    paired = [s for s in challenger if s.target_time in theirs]
    return judge(paired, [theirs[s.target_time] for s in paired])


def _gate(evidence: Evidence, policy: LifecyclePolicy) -> Gate:
    healthy = evidence.dm is not None and evidence.dm < policy.critical
    return "open" if evidence.n >= policy.min_verdicts and healthy else "closed"


def _significant(evidence: Evidence, policy: LifecyclePolicy) -> bool:
    return evidence.n >= policy.min_verdicts and evidence.dm is not None


def decide(
    symbol: str,
    interval: str,
    lineup: Lineup,
    records: Mapping[str, Sequence[Score]],
    policy: LifecyclePolicy,
    now: datetime,
) -> tuple[Lineup, list[ModelChange]]:
    """The lineup after the latest verdicts, and the changes that lead to it.

    ``records`` holds each model's last ``policy.verdicts`` scores on the symbol, oldest
    first, and the champion's also on every candle a challenger's record holds (a challenger
    is judged on its own last verdicts, paired with the champion's on the same candles, even
    where the champion's last ones include candles the challenger missed); ``now`` is the
    decision's time (the newest verdict's target time, so that a replay decides the same at
    the same moment and the events keep the same ids)."""
    changes: list[ModelChange] = []

    def record(model: str) -> Sequence[Score]:
        return records.get(model, ())[-policy.verdicts :]

    def change(
        kind: ChangeKind,
        model: str,
        evidence: Evidence | None,
        reason: str,
        previous: str | None = None,
    ) -> None:
        changes.append(
            ModelChange(
                symbol=symbol,
                interval=interval,
                kind=kind,
                model=ModelRef.parse(model),
                previous=ModelRef.parse(previous) if previous else None,
                evidence=evidence,
                by="policy",
                reason=reason,
                decided_at=now,
            )
        )

    candidates = sorted(lineup.challengers - lineup.blocked - {lineup.champion})

    def healthiest() -> tuple[str, Evidence] | None:
        """The challenger with the lowest MAE ratio among those whose gate would be open."""
        healthy = [
            (e.mae_ratio or 1.0, c, e)
            for c in candidates
            if _gate(e := judge(record(c)), policy) == "open"
        ]
        if not healthy:
            return None
        _, best, its = min(healthy)
        return best, its

    successor, evidence, reason = None, None, ""
    kind: ChangeKind = "demoted"  # the champion failed; "promoted": a challenger beat it
    if lineup.champion in lineup.blocked:
        successor, evidence = healthiest() or (NAIVE, None)
        reason = f"{lineup.champion} was blocked by an operator"
    elif not lineup.pinned:
        champion = records.get(lineup.champion, ())
        duels = [(head_to_head(record(c), champion), c) for c in candidates]
        winners = [
            (e.dm, c, e)
            for e, c in duels
            if _significant(e, policy) and e.dm is not None and e.dm < -policy.critical
        ]
        if winners:
            _, successor, evidence = min(winners)
            kind, reason = "promoted", "significantly more accurate than the champion"
        else:
            mine = judge(record(lineup.champion))
            if _significant(mine, policy) and mine.dm is not None and mine.dm >= policy.critical:
                best = healthiest()
                if best:
                    successor, evidence = best
                    reason = (
                        f"the champion is significantly worse than no change (DM "
                        f"{mine.dm:+.2f}) and this challenger is not"
                    )
    if successor is not None:
        previous = lineup.champion
        lineup = replace(lineup, champion=successor, gate="closed", since=now)
        change(kind, successor, evidence, reason, previous)
    own = judge(record(lineup.champion))
    gate = _gate(own, policy)
    if gate != lineup.gate or lineup.since is None:  # a new coin's first state is news too
        lineup = replace(lineup, gate=gate, since=now)
        why = (
            "its live record is not significantly worse than no change"
            if gate == "open"
            else f"fewer than {policy.min_verdicts} verdicts"
            if own.n < policy.min_verdicts
            else "significantly worse than no change lately"
        )
        change("gate_opened" if gate == "open" else "gate_closed", lineup.champion, own, why)
    return lineup, changes


REQUESTS = frozenset({"pinned", "unpinned", "blocked", "unblocked"})


def apply_request(lineup: Lineup, request: ModelChange) -> tuple[Lineup, ModelChange]:
    """An operator's pin or block applied to the lineup, and the policy's confirmation (the
    event inference acts on). A new champion starts with its gate closed; ``decide`` then
    opens it if its record allows."""
    model = str(request.model)
    if request.kind == "pinned":
        if model != lineup.champion:
            lineup = replace(lineup, champion=model, gate="closed", since=request.decided_at)
        lineup = replace(lineup, pinned=True, blocked=lineup.blocked - {model})
    elif request.kind == "unpinned":
        lineup = replace(lineup, pinned=False)
    elif request.kind == "blocked":
        lineup = replace(lineup, blocked=lineup.blocked | {model})
        if model == lineup.champion:
            lineup = replace(lineup, pinned=False)
    elif request.kind == "unblocked":
        lineup = replace(lineup, blocked=lineup.blocked - {model})
    else:
        raise ValueError(f"{request.kind} is not an operator's request")
    confirmed = request.model_copy(update={"by": "policy", "event_id": ""})
    return lineup, ModelChange.model_validate(confirmed.model_dump())


def current_state(symbol: str, interval: str, lineup: Lineup) -> ModelChange:
    """The lineup's gate as the event that set it (same id): replayed to a replica whose
    predictions show it missed that event."""
    return ModelChange(
        symbol=symbol,
        interval=interval,
        kind="gate_opened" if lineup.gate == "open" else "gate_closed",
        model=ModelRef.parse(lineup.champion),
        by="policy",
        reason="the current state, repeated for a replica that serves another",
        decided_at=lineup.since,
    )


# Policy changes whose model is the symbol's champion from then on.
CHAMPION_KINDS = frozenset({"promoted", "demoted", "pinned", "gate_opened", "gate_closed"})


def follow(lineup: Lineup | None, change: ModelChange) -> Lineup | None:
    """The lineup after one of the policy's changes: how every follower (inference replicas,
    the gateway, a standby verifier) reads a change. Before the first change naming a
    champion there is no lineup; a change asked for or told by anyone else changes nothing
    (an operator's request counts once the policy confirms it)."""
    if change.by != "policy" or (lineup is None and change.kind not in CHAMPION_KINDS):
        return lineup
    model = str(change.model)
    if lineup is None:
        lineup = Lineup(champion=model)
    if change.kind in CHAMPION_KINDS and model != lineup.champion:
        lineup = replace(lineup, champion=model, gate="closed", since=change.decided_at)
    if change.kind in ("gate_opened", "gate_closed"):
        gate: Gate = "open" if change.kind == "gate_opened" else "closed"
        return replace(lineup, gate=gate, since=change.decided_at)
    if change.kind in ("pinned", "unpinned"):
        return replace(lineup, pinned=change.kind == "pinned")
    if change.kind == "blocked":
        return replace(lineup, blocked=lineup.blocked | {model})
    if change.kind == "unblocked":
        return replace(lineup, blocked=lineup.blocked - {model})
    return lineup


def lineup_from(changes: Sequence[ModelChange]) -> Lineup | None:
    """The lineup the changes (oldest first) lead to; None before the first."""
    lineup: Lineup | None = None
    for change in changes:
        lineup = follow(lineup, change)
    return lineup
