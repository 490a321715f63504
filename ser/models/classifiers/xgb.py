"""Gradient-boosted trees (XGBoost, ``hist``) with class-balancing sample weights.

Saved as XGBoost's own JSON model plus a JSON file with the label order, the settings and the
scaler. Trees do not need scaling; the scaler is there so that all three classifiers are the same
``Pipeline(scaler, classifier)`` and take the same inputs (it changes no split). XGBoost is imported
where it is used, so that reading params.yaml (which validates :class:`Params`) does not load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted, validate_data

from ser.artifacts import read_json, write_json
from ser.models.classifiers import scaler_json
from ser.models.classifiers.devices import cpu_cores, xgboost_device
from ser.section import Section

if TYPE_CHECKING:
    import optuna

    from ser.config import Params as AllParams

MODEL_FILE = "xgb.json"
CONFIG_FILE = "xgb_config.json"
SPACE_VERSION = 1  # bump when space() changes, so old studies are not resumed


class Params(Section):
    """params.yaml ``xgboost``."""

    n_estimators: int = Field(200, ge=1)
    max_depth: int = Field(6, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    max_bin: int = Field(32, ge=2)
    device: Literal["auto", "cuda", "cpu"] = "auto"
    n_jobs: int | None = Field(None, ge=1, description="threads; null = all cores")


def space(trial: optuna.Trial) -> dict:
    """Optuna's overrides of ``xgboost``: tree shape, learning rate, sampling."""
    return {"max_depth": trial.suggest_int("max_depth", 3, 10),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True)}


def build(params: AllParams, seed: int = 0) -> Pipeline:
    """StandardScaler + balanced XGBoost; all refit on each training fold."""
    p = params.xgboost
    trees = BalancedXGBClassifier(
        n_estimators=p.n_estimators, max_depth=p.max_depth, learning_rate=p.learning_rate, subsample=p.subsample,
        colsample_bytree=p.colsample_bytree, min_child_weight=p.min_child_weight, max_bin=p.max_bin,
        device=p.device, n_jobs=p.n_jobs, random_state=seed)
    return Pipeline([("scaler", StandardScaler()), ("xgboost", trees)])


class BalancedXGBClassifier(ClassifierMixin, BaseEstimator):
    """``xgboost.XGBClassifier`` (tree_method='hist') fitted with ``compute_sample_weight(class_weight)``:
    with 'balanced' every class weighs the same in the loss whatever its frequency. Any label values."""

    def __init__(self, n_estimators: int = 200, max_depth: int = 6, learning_rate: float = 0.1,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, min_child_weight: float = 1.0,
                 max_bin: int = 32, class_weight: str | None = "balanced", device: str = "auto",
                 n_jobs: int | None = None, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.max_bin = max_bin
        self.class_weight = class_weight
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y) -> BalancedXGBClassifier:
        import xgboost as xgb

        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.device_ = xgboost_device(self.device)
        self.booster_ = xgb.XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight, max_bin=self.max_bin, tree_method="hist",
            device=self.device_, n_jobs=self.n_jobs or cpu_cores(), random_state=self.random_state)
        self.booster_.fit(X, codes, sample_weight=compute_sample_weight(self.class_weight, codes))
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return self.booster_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


def save(model: Pipeline, folder: Path) -> Path:
    """``xgb.json`` (XGBoost's JSON model format) + ``xgb_config.json`` (settings, classes, scaler)."""
    folder = Path(folder)
    scaler, trees = model[0], model[-1]
    trees.booster_.save_model(folder / MODEL_FILE)
    write_json(folder / CONFIG_FILE, {
        "params": trees.get_params(),
        "classes": trees.classes_.tolist(),
        "n_features_in": int(trees.n_features_in_),
        "scaler": scaler_json.to_dict(scaler),
    })
    return folder / MODEL_FILE


def load(folder: Path) -> Pipeline:
    import xgboost as xgb

    folder = Path(folder)
    config = read_json(folder / CONFIG_FILE)
    trees = BalancedXGBClassifier(**config["params"])
    trees.classes_ = np.asarray(config["classes"])
    trees.n_features_in_ = config["n_features_in"]
    trees.device_ = "cpu"  # predicting needs no GPU (and deciding would import torch)
    trees.booster_ = xgb.XGBClassifier(device="cpu", n_jobs=trees.n_jobs or cpu_cores())
    trees.booster_.load_model(folder / MODEL_FILE)
    return Pipeline([("scaler", scaler_json.from_dict(config["scaler"])), ("xgboost", trees)])
