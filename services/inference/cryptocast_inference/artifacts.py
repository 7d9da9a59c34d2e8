"""Model artifacts on disk: one folder per version, ``<artifacts>/<name>/<version>/``, named
``name@version`` in configuration and on every prediction."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptocast_common.runtime import ConfigurationError

BUNDLED_ARTIFACTS = Path(__file__).parent / "models"


class ArtifactError(ConfigurationError):
    """The artifact is missing, damaged, or does not fit this service's configuration."""


def artifact_dir(root: Path, model: str) -> Path:
    name, _, version = model.partition("@")
    if not version:
        raise ArtifactError(f"model {model!r} must be given as name@version")
    return root / name / version


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
