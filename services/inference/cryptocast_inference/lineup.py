"""Which of the loaded models is champion on each symbol, and its gate: this replica's copy of
the lifecycle state the verifier decides (``cryptocast_common.lifecycle``).

Every model predicts every candle of the interval it was fitted on (the baseline those of
every interval); the lineup only says which prediction is the champion's, and whether the
champion serves its own point forecast or no change. A symbol nobody has decided on yet is
served by its interval's configured champion with its gate closed: no change until the
model's live record says otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptocast_common import lifecycle
from cryptocast_common.events import Gate, ModelChange, Role
from cryptocast_inference.predictors import Predictor

log = logging.getLogger(__name__)
Series = tuple[str, str]  # (symbol, interval)


@dataclass
class Lineup:
    models: Sequence[Predictor]  # the configured champion first
    decided: dict[Series, lifecycle.Lineup] = field(default_factory=dict)
    # The configured champion of each interval; the first model for any other.
    champions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.default_champion = str(self.models[0].model)
        self.loaded = {str(p.model) for p in self.models}

    @property
    def window(self) -> int:
        """Candles the longest-sighted model needs."""
        return max(p.window for p in self.models)

    def for_interval(self, interval: str) -> list[Predictor]:
        """The models that predict candles of ``interval``."""
        return [p for p in self.models if p.interval in (None, interval)]

    def window_for(self, interval: str) -> int:
        """Candles the longest-sighted model of ``interval`` needs."""
        return max((p.window for p in self.for_interval(interval)), default=1)

    def add(self, predictor: Predictor) -> None:
        """A model loaded while the service runs (a newly registered version)."""
        if str(predictor.model) not in self.loaded:
            self.models = [*self.models, predictor]
            self.loaded.add(str(predictor.model))

    def champion(self, series: Series) -> str:
        decided = self.decided.get(series)
        if decided:
            return decided.champion
        return self.champions.get(series[1], self.default_champion)

    def gate(self, series: Series) -> Gate:
        decided = self.decided.get(series)
        return decided.gate if decided else "closed"

    def role(self, model: str, series: Series) -> Role:
        if model == self.champion(series):
            return "champion"
        return "baseline" if model.startswith("naive@") else "challenger"

    def apply(self, change: ModelChange) -> None:
        """Follow the policy's decisions (``lifecycle.follow``); a champion this replica has
        not loaded is refused, and the current one keeps serving."""
        series = (change.symbol, change.interval)
        followed = lifecycle.follow(self.decided.get(series), change)
        if followed is None:
            return
        if followed.champion not in self.loaded:
            log.error(
                "the lifecycle chose a model this replica has not loaded; keeping %s",
                self.champion(series),
                extra={"symbol": change.symbol, "model": followed.champion, "change": change.kind},
            )
            return
        if self.champion(series) != followed.champion:
            log.info("now champion", extra={"symbol": change.symbol, "model": followed.champion})
        self.decided[series] = followed
