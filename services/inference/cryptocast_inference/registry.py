"""Which models run: the configured artifacts, loaded once and checked against the service,
from the bundled folder or from the model registry every replica reads (MongoDB), where the
trainer adds new versions while the service runs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
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


def load_model(
    model: str, artifacts_dir: Path, intervals: Sequence[str], window: int | None
) -> Predictor:
    """``name@version`` (or ``naive``) loaded; raises ArtifactError if it was fitted on an
    interval this deployment does not serve, or on windows other than ``window`` when one
    is required."""
    if is_naive(model):
        return NaivePredictor()
    folder = artifact_dir(artifacts_dir, model)
    predictor: Predictor
    if is_distribution(folder):
        predictor = forecaster = load_distribution(folder)
        check = partial(forecaster.check_fits, window)
    else:
        artifact = load_artifact(folder)
        predictor = LstmPredictor(artifact)
        check = partial(artifact.check_fits, window or artifact.window)
    if predictor.interval not in intervals:
        raise ArtifactError(
            f"model {model} was fitted on {predictor.interval} candles; this deployment serves "
            f"{', '.join(intervals)} (CRYPTOCAST_INTERVALS)"
        )
    check(str(predictor.interval))
    return predictor


def build_predictor(
    settings: InferenceSettings, interval: str, primary: str | None = None
) -> Predictor:
    """The configured champion of ``interval`` (CRYPTOCAST_INTERVAL's unless ``primary`` is
    another)."""
    model = settings.champion_for(interval, primary or interval)
    return load_model(model, settings.artifacts_dir, [interval], settings.window)


async def build_lineup(
    settings: InferenceSettings, source: ModelSource, intervals: Sequence[str], primary: str
) -> Lineup:
    """Each interval's champion, the challengers (each on its own window) and the no-change
    baseline, which is every interval's champion that has no model configured."""
    champions = {i: settings.champion_for(i, primary) for i in intervals}
    models = []
    for interval, model in champions.items():
        champion = await source.fetch(model)
        if settings.window is not None and champion.window != settings.window:
            raise ArtifactError(
                f"model {model} does not fit this service: fitted on windows of "
                f"{champion.window}, CRYPTOCAST_INFERENCE_WINDOW is {settings.window}"
            )
        if champion.interval not in (None, interval):
            raise ArtifactError(
                f"model {model} was fitted on {champion.interval} candles, not {interval}: "
                "CRYPTOCAST_INFERENCE_MODEL serves CRYPTOCAST_INTERVAL, and "
                "CRYPTOCAST_INFERENCE_INTERVAL_MODELS the other intervals"
            )
        models.append(champion)
        champions[interval] = str(champion.model)
    models += [await source.fetch(m) for m in settings.challengers]
    if settings.baseline:
        models.append(NaivePredictor())
    return lineup_of(models, champions)


def lineup_of(models: list[Predictor], champions: dict[str, str] | None = None) -> Lineup:
    """The models, each once, with each interval's ``champions``; the first model is the
    champion of any other."""
    unique: dict[str, Predictor] = {}
    for model in models:
        unique.setdefault(str(model.model), model)
    return Lineup(list(unique.values()), champions=champions or {})


class ModelSource(Protocol):
    async def fetch(self, model: str) -> Predictor:
        """``name@version`` ready to serve; raises ArtifactError or RegistryError if it
        cannot be (missing, damaged, or fitted for another interval)."""
        ...


@dataclass
class FolderModels:
    """Artifacts in a folder: the bundled ones, or a mounted volume."""

    artifacts_dir: Path
    intervals: Sequence[str]

    async def fetch(self, model: str) -> Predictor:
        return await asyncio.to_thread(load_model, model, self.artifacts_dir, self.intervals, None)


@dataclass
class RegisteredModels:
    """Versions in the registry, checked against their recorded hashes, unpacked into
    ``cache_dir`` and loaded from there (the loaders check the files' hashes again)."""

    registry: ModelRegistry
    cache_dir: Path
    intervals: Sequence[str]

    async def fetch(self, model: str) -> Predictor:
        if is_naive(model):
            return NaivePredictor()
        version, files = await self.registry.get(model)
        folder = self.cache_dir / version.name / version.version
        await asyncio.to_thread(_unpack, folder, files)
        return await asyncio.to_thread(load_model, model, self.cache_dir, self.intervals, None)


def _unpack(folder: Path, files: dict[str, bytes]) -> None:
    """Write a version's files; a half-written folder is never loaded (each file is renamed
    into place once written)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        partial = folder / f".{name}.{os.getpid()}.partial"
        partial.write_bytes(body)
        partial.replace(folder / name)
