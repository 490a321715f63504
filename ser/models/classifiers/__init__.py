"""Classifier registry. Each module declares, for its params.yaml group (the registry name):

- ``Params``: the group's pydantic model (fields, defaults, validation); :mod:`ser.config` adds it
  to the params as ``<name>``;
- ``space(trial) -> dict`` and ``SPACE_VERSION``: the Optuna search space, as overrides of the
  group, and its version (bumped when the space changes, so no study resumes across it);
- ``build(params, seed)``: a scikit-learn style estimator (fit / predict / predict_proba, scaling
  inside);
- ``save(model, dir)`` and ``load(dir)``, in a format that does not execute code when loaded.

:mod:`ser.config` imports every classifier module for its ``Params``, so a module imports heavy
libraries (torch, XGBoost, skops) inside the functions that use them. A final step whose fit takes
``epoch_callback`` reports each epoch's validation UAR, so tuning can prune its trials.

Adding a classifier means one module in this package, one line here, and its group in params.yaml
and in the train stage's params in dvc.yaml.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from ser.models.cv import final_step, predict_proba

REGISTRY = {
    "svm": "ser.models.classifiers.svm",
    "mlp": "ser.models.classifiers.mlp",
    "xgboost": "ser.models.classifiers.xgb",
    "attentive": "ser.models.classifiers.attentive",    # frame sequences: learned layer weights + attentive pooling
    "cnn_bilstm": "ser.models.classifiers.cnn_bilstm",  # frame sequences: the two-tier system's Tier-1 model
    "finetune": "ser.models.classifiers.finetune",      # the audio: fine-tunes the encoder of features.model
    "ensemble": "ser.models.classifiers.ensemble",      # late fusion of svm / mlp / xgboost
}

# fit parameters a classifier may take, and the embeddings column each comes from (texts: when the
# manifest has transcripts)
ROW_FACTS = {"groups": "speaker", "clip_ids": "clip_id", "aug": "aug", "texts": "text"}


def get(name: str) -> ModuleType:
    """Import the module of one classifier by its params.yaml name."""
    return importlib.import_module(REGISTRY[name])


def takes_frames(name: str) -> bool:
    """Whether the classifier takes frame sequences (``features.pooling: none``)."""
    return getattr(get(name), "TAKES_FRAMES", False)


def takes_audio(name: str) -> bool:
    """Whether the classifier trains on the clips' audio (fine-tuning): extract then stores audio."""
    return getattr(get(name), "TAKES_AUDIO", False)


def fit(model: BaseEstimator, X: np.ndarray, y: np.ndarray, meta: pd.DataFrame | None = None,
        group_by: str = "speaker", **extra) -> BaseEstimator:
    """``model.fit(X, y)``, also passing the rows' speakers (``groups``), clip ids and augmentation
    index (``aug``) from ``meta``, and any ``extra`` fit parameter, to the final step when its fit
    accepts them (routed as ``<step>__groups`` etc. through a Pipeline).

    Inner splits follow the outer protocol: with ``group_by='none'`` (folds not by speaker) no
    speakers are passed, so they hold out whole clips; by speaker or by corpus they hold out speakers."""
    step = final_step(model)
    accepted = inspect.signature(step.fit).parameters
    given = dict(extra)
    if meta is not None:
        given.update({name: meta[column].to_numpy() for name, column in ROW_FACTS.items()
                      if column in meta and (name != "groups" or group_by != "none")})
    given = {k: v for k, v in given.items() if k in accepted and v is not None}
    if step is not model:
        name = model.steps[-1][0]
        given = {f"{name}__{k}": v for k, v in given.items()}
    return model.fit(X, y, **given)


def fit_rows(model: BaseEstimator, X, y: np.ndarray, rows: np.ndarray, facts: dict) -> BaseEstimator:
    """A clone of ``model`` fitted on ``rows`` of X and y, with those rows of each fit fact (``groups``,
    ``clip_ids``, ``aug``; None = not given): how a meta-estimator fits its members on part of its rows."""
    extra = {k: np.asarray(v)[rows] for k, v in facts.items() if v is not None}
    return fit(clone(model), X[rows], y[rows], None, **extra)


def proba_over(model: BaseEstimator, X, classes: np.ndarray) -> np.ndarray:
    """A fitted member's probabilities over ``classes`` (integer codes it was fit on; 0 for a class it never saw)."""
    return predict_proba(model, X, int(classes.max()) + 1)[:, classes]
