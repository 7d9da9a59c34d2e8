"""A model's live record on one series as the lifecycle handler keeps it between batches, so
that a batch does not read each model's last verdicts back from storage.

Only one-step verdicts are scored, so a model's verdict on a series is identified by its
target time (the verification's id is derived from the model, the series and that time): a
record keyed by target time counts a redelivered verdict once, and a verdict that comes out
of order simply takes its place among the others.

Which verifier's memory is current, and when it must be read again from storage, is the
handler's business (``handlers.LifecycleDeps``); this module only keeps what it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cryptocast_common.lifecycle import Score

TRIM_AT = 2  # a record is trimmed back once it holds this many times the scores it needs


@dataclass
class Record:
    """One model's scores on one series, by target time.

    What it holds of storage: every stored score from ``since`` on (every one if ``since``
    is None), at least ``n`` of them when ``since`` is set (so its newest ``n`` are storage's
    newest ``n``), and at every time in ``looked_up`` (older ones read for a pairing) every
    stored score there. Other scores it may hold are stored ones too, but say nothing of what
    else is stored around them."""

    scores: dict[datetime, Score] = field(default_factory=dict)
    since: datetime | None = None
    looked_up: set[datetime] = field(default_factory=set)

    @classmethod
    def loaded(cls, newest: list[Score], n: int) -> Record:
        """From storage's newest ``n`` scores (oldest first): fewer than ``n`` are all."""
        since = newest[0].target_time if len(newest) >= n else None
        return cls({s.target_time: s for s in newest}, since)

    def add(self, scores: Iterable[Score]) -> None:
        """Scores just stored."""
        for score in scores:
            self.scores[score.target_time] = score

    def holds(self, moment: datetime) -> bool:
        """Whether every stored score at ``moment`` is here (none stored: none here)."""
        return self.since is None or moment >= self.since or moment in self.looked_up

    def look_up(self, moments: Iterable[datetime], found: Iterable[Score]) -> None:
        """The stored scores at ``moments``, as storage gave them."""
        self.add(found)
        self.looked_up.update(moments)

    def newest(self, n: int) -> list[Score]:
        """The last ``n`` scores, oldest first: storage's last ``n``."""
        return sorted(self.scores.values(), key=_by_time)[-n:]

    def at(self, moments: Iterable[datetime]) -> list[Score]:
        """The scores held at ``moments``."""
        return [self.scores[t] for t in moments if t in self.scores]

    def trim(self, n: int, keep_from: datetime | None = None) -> None:
        """Forget scores older than both the newest ``n`` and ``keep_from``, once it holds
        ``TRIM_AT`` times ``n`` or more (so that a trim is rare)."""
        if len(self.scores) < TRIM_AT * n:
            return
        cutoff = self.newest(n)[0].target_time
        if keep_from is not None:
            cutoff = min(cutoff, keep_from)
        self.scores = {t: s for t, s in self.scores.items() if t >= cutoff}
        self.looked_up = {t for t in self.looked_up if t >= cutoff}
        if self.since is None or cutoff > self.since:
            self.since = cutoff


def _by_time(score: Score) -> datetime:
    return score.target_time
