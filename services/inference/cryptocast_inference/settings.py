from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cryptocast_common.events import MAX_HORIZON, Interval
from cryptocast_common.settings import comma_separated, key_value_pairs
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS

SHIPPED_MODEL = "dist-4h@20261203-56c93a37"  # 1 .. 6 candles ahead
# Its one-step forecasts are bit for bit those of the version before, kept bundled so that a
# lifecycle that chose it before an upgrade still finds it.
SHIPPED_DAILY_MODEL = "dist-1d@20261203-5298943b"  # 1 .. 7 days ahead
LSTM_MODEL = "lstm-4h@20261125-f64027e9"  # the previous model, kept for comparison


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_INFERENCE_", extra="ignore", use_attribute_docstrings=True
    )

    model: str = SHIPPED_MODEL
    """The artifact that serves CRYPTOCAST_INTERVAL, as name@version under artifacts_dir, or 'naive'
    for the no-change baseline."""
    interval_models: Annotated[dict[Interval, str], NoDecode] = {"1d": SHIPPED_DAILY_MODEL}
    """Champions of the other intervals of CRYPTOCAST_INTERVALS, e.g. 1d=dist-1d@<version>; an
    interval without one is served no change (the baseline). Entries for intervals not served
    are ignored."""
    horizons: int = Field(default=1, ge=1, le=MAX_HORIZON)
    """Predict the closes 1 .. horizons candles ahead, as far as each model forecasts (the
    baseline always can); the original endpoints serve one candle ahead."""
    artifacts_dir: Path = BUNDLED_ARTIFACTS
    """Folder holding <name>/<version>/ artifacts."""
    challengers: Annotated[list[str], NoDecode] = []
    """Comma-separated name@version artifacts that predict every candle beside the champion, scored
    live; the lifecycle promotes one that does significantly better."""
    baseline: bool = True
    """Publish the no-change baseline's predictions too."""
    registry: Literal["folder", "mongo"] = "folder"
    """Where models come from: 'folder' (artifacts_dir), or 'mongo', the model registry in
    CRYPTOCAST_MONGO_URL every replica reads, seeded from artifacts_dir on first start; the
    trainer's new versions are then loaded without a redeploy."""
    model_cache_dir: Path = Path(tempfile.gettempdir()) / "cryptocast-models"
    """Where versions read from the registry are unpacked."""
    window: int | None = Field(default=None, ge=1)
    """Candles per model input; unset: what the artifact was fitted on. When set, the service
    refuses an artifact fitted otherwise."""
    gateway_url: str = "http://127.0.0.1:8000"
    """Where to fetch candle history when a window is incomplete (after a restart)."""
    batch_size: int = Field(default=100, ge=1)
    """Candles predicted in one batch."""

    @field_validator("challengers", mode="before")
    @classmethod
    def _split_challengers(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("interval_models", mode="before")
    @classmethod
    def _split_interval_models(cls, value: object) -> object:
        """``"1d=dist-1d@v,1h=naive"`` → {"1d": "dist-1d@v", "1h": "naive"}."""
        return key_value_pairs(value, str, "INTERVAL=name@version")

    def champion_for(self, interval: str, primary: str) -> str:
        """The configured champion of ``interval`` where ``primary`` is CRYPTOCAST_INTERVAL."""
        if interval == primary:
            return self.model
        return self.interval_models.get(interval, "naive")
