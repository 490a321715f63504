"""Late fusion of classifiers on the same features: the weighted mean of the members' probabilities.

``ensemble.members`` names classifiers that read one vector per clip (svm, mlp, xgboost), each built
from its own params.yaml group. With ``weights: fit`` the weights are fit on inner out-of-fold
predictions: inside the training rows, ``inner_folds`` folds that hold out whole speakers (whole clips
without speakers, as every inner split here: :func:`ser.models.inner_splits.split_units`), each member fit on the
other folds and scored on the held-out original clips, then the weights on the simplex that minimise
the log loss of the mixture. The test fold of the outer CV is never seen. Then every member is fit on
all training rows. A list of numbers gives fixed weights instead (normalised to sum to 1).

Saved as ``ensemble.json`` (members, weights, classes) and each member in its own sub-folder, in that
member's format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator
from sklearn.base import BaseEstimator, ClassifierMixin

from ser.artifacts import read_json, write_json
from ser.section import Section

if TYPE_CHECKING:
    from ser.config import Params as AllParams

FILE = "ensemble.json"
SPACE_VERSION = 1
MEMBERS = ("svm", "mlp", "xgboost")


class Params(Section):
    """params.yaml ``ensemble``."""

    members: list[str] = Field(default_factory=lambda: ["svm", "mlp", "xgboost"], min_length=2)
    weights: Literal["fit"] | list[float] = "fit"
    inner_folds: int = Field(3, ge=2, description="weights: fit: speaker-grouped folds inside each training fold")

    @model_validator(mode="after")
    def _members(self) -> Params:
        unknown = [m for m in self.members if m not in MEMBERS]
        if unknown or len(set(self.members)) < len(self.members):
            raise ValueError(f"ensemble.members: {self.members}: use two or more distinct of {', '.join(MEMBERS)}")
        if isinstance(self.weights, list) and (len(self.weights) != len(self.members) or min(self.weights) < 0
                                               or sum(self.weights) <= 0):
            raise ValueError(f"ensemble.weights: {self.weights}: one weight >= 0 per member ({len(self.members)}), "
                             "not all 0, or 'fit'")
        return self


def check(params: AllParams) -> None:
    if params.tune.enabled:
        raise ValueError("classifier ensemble is not tuned as a whole: tune each member (tune.enabled with classifier "
                         "svm, mlp or xgboost), put the values in its group, and set tune.enabled: false")


def space(trial) -> dict:
    raise NotImplementedError("classifier ensemble is not tuned as a whole")


def build(params: AllParams, seed: int = 0) -> Ensemble:
    from ser.models import classifiers

    p = params.ensemble
    members = [(name, classifiers.get(name).build(params, seed)) for name in p.members]
    return Ensemble(members, p.weights, p.inner_folds, seed)


class Ensemble(ClassifierMixin, BaseEstimator):
    """``predict_proba`` = sum of ``weights_[i]`` x member i's probabilities. After fitting: ``members_``
    (fitted on all rows), ``weights_``, ``classes_``, ``fit_facts_`` (the weights and how they were chosen)."""

    def __init__(self, members: list, weights: str | list[float] = "fit", inner_folds: int = 3,
                 random_state: int = 0):
        self.members = members
        self.weights = weights
        self.inner_folds = inner_folds
        self.random_state = random_state

    def fit(self, X, y, groups=None, clip_ids=None, aug=None) -> Ensemble:
        from ser.models.classifiers import fit_rows, proba_over
        from ser.models.inner_splits import grouped_folds, split_units

        self.classes_, codes = np.unique(y, return_inverse=True)
        facts = {"groups": groups, "clip_ids": clip_ids, "aug": aug}
        if self.weights == "fit":
            scored = None if aug is None else np.asarray(aug) == 0
            units, kind = split_units(len(y), groups, clip_ids, scored)
            folds = grouped_folds(codes, units, self.inner_folds, self.random_state, scored)
            held = np.concatenate([h for _, h in folds])
            inner = np.stack([np.concatenate([proba_over(fit_rows(m, X, y, train, facts), X[h], self.classes_)
                                              for train, h in folds]) for _, m in self.members])
            self.weights_ = mixture_weights(inner, np.searchsorted(self.classes_, y[held]))
            how = f"fit on inner out-of-fold predictions ({len(folds)} folds by {kind}, {len(held)} clips)"
        else:
            self.weights_ = np.asarray(self.weights, float) / np.sum(self.weights)
            how = "fixed (ensemble.weights)"
        everything = np.arange(len(y))
        self.members_ = [(name, fit_rows(m, X, y, everything, facts)) for name, m in self.members]
        self.n_features_in_ = X.shape[1]
        weights = {name: round(float(w), 4) for (name, _), w in zip(self.members, self.weights_)}
        self.fit_facts_ = {"ensemble_weights": weights, "ensemble_weighting": how}
        return self

    def predict_proba(self, X) -> np.ndarray:
        from ser.models.classifiers import proba_over

        return sum(w * proba_over(m, X, self.classes_) for (_, m), w in zip(self.members_, self.weights_))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


def mixture_weights(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights on the simplex minimising the log loss of sum_m w_m proba[m] (proba: members x rows x classes)."""
    from scipy.optimize import minimize

    picked = np.clip(proba[:, np.arange(len(y)), y], 1e-12, 1.0)  # members x rows: each member's p(true class)

    def loss(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        return float(-np.log(np.clip(w @ picked, 1e-12, None)).mean())

    theta = minimize(loss, np.zeros(len(proba)), method="Nelder-Mead" if len(proba) < 3 else "Powell").x
    w = np.exp(theta - theta.max())
    return w / w.sum()


def save(model: Ensemble, folder: Path) -> Path:
    from ser.models import classifiers

    folder = Path(folder)
    for name, member in model.members_:
        (folder / name).mkdir(parents=True, exist_ok=True)
        classifiers.get(name).save(member, folder / name)
    return write_json(folder / FILE, {"members": [n for n, _ in model.members_], "weights": model.weights_.tolist(),
                                      "classes": model.classes_.tolist(), "n_features_in": model.n_features_in_,
                                      "fit_facts": model.fit_facts_})


def load(folder: Path) -> Ensemble:
    from ser.models import classifiers

    folder = Path(folder)
    config = read_json(folder / FILE)
    model = Ensemble([(n, None) for n in config["members"]], config["weights"])
    model.members_ = [(n, classifiers.get(n).load(folder / n)) for n in config["members"]]
    model.weights_, model.classes_ = np.asarray(config["weights"]), np.asarray(config["classes"])
    model.n_features_in_, model.fit_facts_ = config["n_features_in"], config["fit_facts"]
    return model
