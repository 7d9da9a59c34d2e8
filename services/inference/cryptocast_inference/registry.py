"""Which model serves: the configured artifact, loaded once and checked against the service."""

from __future__ import annotations

from cryptocast_inference.artifacts import artifact_dir
from cryptocast_inference.distribution import is_distribution, load_distribution
from cryptocast_inference.lstm import LstmPredictor, load_artifact
from cryptocast_inference.predictors import NaivePredictor, Predictor
from cryptocast_inference.settings import InferenceSettings


def build_predictor(settings: InferenceSettings, interval: str) -> Predictor:
    """The configured model, loaded once; raises ArtifactError if it does not fit."""
    if settings.model == "naive":
        return NaivePredictor()
    folder = artifact_dir(settings.artifacts_dir, settings.model)
    if is_distribution(folder):
        forecaster = load_distribution(folder)
        forecaster.check_fits(settings.window, interval)
        return forecaster
    artifact = load_artifact(folder)
    artifact.check_fits(settings.window or artifact.window, interval)
    return LstmPredictor(artifact)
