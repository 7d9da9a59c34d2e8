from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptocast_common.lifecycle import LifecyclePolicy
from cryptocast_common.metrics import TOLERANCE_PCT


class VerifierSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_VERIFIER_", extra="ignore", use_attribute_docstrings=True
    )

    tolerance_pct: float = Field(default=TOLERANCE_PCT, gt=0)
    """A prediction within this percentage of the actual close counts as correct."""
    batch_size: int = Field(default=256, ge=1)
    """Messages taken from the queue at most at once; invalid ones among them are dead-lettered
    together. Each batch costs a few database round trips and one wait for the broker's
    confirms, whatever its size (64 doubled the round trips of a fast backfill)."""
    reorder_candles: int = Field(default=50, ge=2)
    """How far out of order a prediction may arrive: a close is kept until predictions have moved
    this many intervals past it, and a prediction waits until candles have moved this many intervals
    past its target."""
    max_closes: int = Field(default=10_000, ge=10)
    """Closes kept per series when predictions stop coming (inference down); older ones are given
    up, logged and counted."""
    gate_verdicts: int = Field(default=120, ge=2)
    """The live record the model lifecycle judges: each model's last N verified predictions per
    symbol (120 is 20 days of 4-hour candles)."""
    gate_min_verdicts: int = Field(default=60, ge=2)
    """Fewer verdicts than this: the champion serves no change (gate closed) and no challenger is
    promoted."""

    def lifecycle_policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(self.gate_verdicts, min(self.gate_min_verdicts, self.gate_verdicts))
