"""Which models run: the configured artifacts, loaded once and checked against the service."""

from __future__ import annotations

from pathlib import Path

from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.distribution import is_distribution, load_distribution
from cryptocast_inference.lineup import Lineup
from cryptocast_inference.lstm import LstmPredictor, load_artifact
from cryptocast_inference.predictors import NaivePredictor, Predictor
from cryptocast_inference.settings import InferenceSettings


def load_model(model: str, artifacts_dir: Path, interval: str, window: int | None) -> Predictor:
    """``name@version`` (or ``naive``) loaded; raises ArtifactError if it does not fit the
    interval, or ``window`` when one is required."""
    if model in ("naive", str(NaivePredictor.model)):
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


def build_lineup(settings: InferenceSettings, interval: str) -> Lineup:
    """The champion, the challengers (each on its own window) and the no-change baseline."""
    models = [build_predictor(settings, interval)]
    models += [load_model(m, settings.artifacts_dir, interval, None) for m in settings.challengers]
    if settings.baseline:
        models.append(NaivePredictor())
    return lineup_of(models)


def lineup_of(models: list[Predictor]) -> Lineup:
    """The models, each once, the first as the default champion."""
    unique: dict[str, Predictor] = {}
    for model in models:
        unique.setdefault(str(model.model), model)
    return Lineup(list(unique.values()))
