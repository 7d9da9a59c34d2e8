"""Which of the loaded models is champion on each symbol, and its gate: this replica's copy of
the lifecycle state the verifier decides (``cryptocast_common.lifecycle``).

Every model predicts every candle; the lineup only says which prediction is the champion's,
and whether the champion serves its own point forecast or no change. A symbol nobody has
decided on yet is served by the configured champion with its gate closed: no change until
the model's live record says otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptocast_common.events import Gate, ModelChange, Role
from cryptocast_inference.predictors import Predictor

log = logging.getLogger(__name__)
Series = tuple[str, str]  # (symbol, interval)
CHAMPION_CHANGES = frozenset({"promoted", "demoted", "pinned"})
GATE_CHANGES = frozenset({"gate_opened", "gate_closed"})


@dataclass
class Lineup:
    models: Sequence[Predictor]  # the configured champion first
    champions: dict[Series, str] = field(default_factory=dict)
    gates: dict[Series, Gate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.default_champion = str(self.models[0].model)
        self.loaded = {str(p.model) for p in self.models}

    @property
    def window(self) -> int:
        """Candles the longest-sighted model needs."""
        return max(p.window for p in self.models)

    def add(self, predictor: Predictor) -> None:
        """A model loaded while the service runs (a newly registered version)."""
        if str(predictor.model) not in self.loaded:
            self.models = [*self.models, predictor]
            self.loaded.add(str(predictor.model))

    def champion(self, series: Series) -> str:
        return self.champions.get(series, self.default_champion)

    def gate(self, series: Series) -> Gate:
        return self.gates.get(series, "closed")

    def role(self, model: str, series: Series) -> Role:
        if model == self.champion(series):
            return "champion"
        return "baseline" if model.startswith("naive@") else "challenger"

    def apply(self, change: ModelChange) -> None:
        """Follow the policy's decisions (an operator's request waits for the policy)."""
        if change.by != "policy":
            return
        series, model = (change.symbol, change.interval), str(change.model)
        if change.kind not in CHAMPION_CHANGES | GATE_CHANGES:
            return
        if model not in self.loaded:
            log.error(
                "the lifecycle chose a model this replica has not loaded; keeping %s",
                self.champion(series),
                extra={"symbol": change.symbol, "model": model, "change": change.kind},
            )
            return
        if self.champion(series) != model:
            log.info("now champion", extra={"symbol": change.symbol, "model": model})
        self.champions[series] = model
        self.gates[series] = "open" if change.kind == "gate_opened" else "closed"
