"""Which models run: the configured artifacts, loaded once and checked against the service,
from the bundled folder or from the model registry every replica reads (MongoDB), where the
trainer adds new versions while the service runs."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptocast_common.registry import ModelRegistry
from cryptocast_inference.artifacts import ArtifactError, artifact_dir
from cryptocast_inference.distribution import is_distribution, load_distribution
from cryptocast_inference.lineup import Lineup
from cryptocast_inference.lstm import LstmPredictor, load_artifact
from cryptocast_inference.predictors import NaivePredictor, Predictor
from cryptocast_inference.settings import InferenceSettings


def is_naive(model: str) -> bool:
    """The no-change baseline, which needs no artifact: ``naive`` or ``naive@1``."""
    return model in ("naive", str(NaivePredictor.model))


def load_model(model: str, artifacts_dir: Path, interval: str, window: int | None) -> Predictor:
    """``name@version`` (or ``naive``) loaded; raises ArtifactError if it does not fit the
    interval, or ``window`` when one is required."""
    if is_naive(model):
        return NaivePredictor()
    folder = artifact_dir(artifacts_dir, model)
    if is_distribution(folder):
        forecaster = load_distribution(folder)
        forecaster.check_fits(window, interval)
        return forecaster
    artifact = load_artifact(folder)
    artifact.check_fits(window or artifact.window, interval)
    return LstmPredictor(artifact)


def build_predictor(settings: InferenceSettings, interval: str) -> Predictor:
    """The configured champion."""
    return load_model(settings.model, settings.artifacts_dir, interval, settings.window)


async def build_lineup(settings: InferenceSettings, source: ModelSource) -> Lineup:
    """The champion, the challengers (each on its own window) and the no-change baseline."""
    champion = await source.fetch(settings.model)
    if settings.window is not None and champion.window != settings.window:
        raise ArtifactError(
            f"model {settings.model} does not fit this service: fitted on windows of "
            f"{champion.window}, CRYPTOCAST_INFERENCE_WINDOW is {settings.window}"
        )
    models = [champion] + [await source.fetch(m) for m in settings.challengers]
    if settings.baseline:
        models.append(NaivePredictor())
    return lineup_of(models)


def lineup_of(models: list[Predictor]) -> Lineup:
    """The models, each once, the first as the default champion."""
    unique: dict[str, Predictor] = {}
    for model in models:
        unique.setdefault(str(model.model), model)
    return Lineup(list(unique.values()))


class ModelSource(Protocol):
    async def fetch(self, model: str) -> Predictor:
        """``name@version`` ready to serve; raises ArtifactError or RegistryError if it
        cannot be (missing, damaged, or fitted for another interval)."""
        ...


@dataclass
class FolderModels:
    """Artifacts in a folder: the bundled ones, or a mounted volume."""

    artifacts_dir: Path
    interval: str

    async def fetch(self, model: str) -> Predictor:
        return await asyncio.to_thread(load_model, model, self.artifacts_dir, self.interval, None)


@dataclass
class RegisteredModels:
    """Versions in the registry, checked against their recorded hashes, unpacked into
    ``cache_dir`` and loaded from there (the loaders check the files' hashes again)."""

    registry: ModelRegistry
    cache_dir: Path
    interval: str

    async def fetch(self, model: str) -> Predictor:
        if is_naive(model):
            return NaivePredictor()
        version, files = await self.registry.get(model)
        folder = self.cache_dir / version.name / version.version
        await asyncio.to_thread(_unpack, folder, files)
        return await asyncio.to_thread(load_model, model, self.cache_dir, self.interval, None)


def _unpack(folder: Path, files: dict[str, bytes]) -> None:
    """Write a version's files; a half-written folder is never loaded (each file is renamed
    into place once written)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        partial = folder / f".{name}.{os.getpid()}.partial"
        partial.write_bytes(body)
        partial.replace(folder / name)
