from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS

SHIPPED_MODEL = "dist-4h@20261202-4dcd0876"
LSTM_MODEL = "lstm-4h@20261125-f64027e9"  # the previous model, kept for comparison


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRYPTOCAST_INFERENCE_", extra="ignore")

    model: str = Field(
        default=SHIPPED_MODEL,
        description="The artifact that serves, as name@version under artifacts_dir, "
        "or 'naive' for the no-change baseline.",
    )
    artifacts_dir: Path = Field(
        default=BUNDLED_ARTIFACTS, description="Folder holding <name>/<version>/ artifacts."
    )
    window: int | None = Field(
        default=None,
        ge=1,
        description="Candles per model input; unset: what the artifact was fitted on. When "
        "set, the service refuses an artifact fitted otherwise.",
    )
    gateway_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where to fetch candle history when a window is incomplete (after a restart).",
    )
    batch_size: int = Field(default=100, ge=1, description="Candles predicted in one batch.")
