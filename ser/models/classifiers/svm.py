"""RBF-kernel SVM on standardised features, balanced class weights, calibrated probabilities.

The model is libsvm's SVC (RBF kernel, ``C``, ``gamma``, ``class_weight='balanced'``) exactly; only
where the kernel values come from changes with the size of the training set. Up to
``svm.precompute_max_rows`` rows the kernel matrix is computed once with BLAS (float32 matrix
products, 8·n² bytes as float64) and libsvm reads it (``kernel='precomputed'``): on 18k x 1024
rows that is ~30x faster than libsvm computing each kernel value itself, with the same support
vectors and predictions. Larger sets fall back to libsvm's own kernel (slow, little memory).

Probabilities are sigmoid-calibrated one-vs-rest scores, as scikit-learn's
``CalibratedClassifierCV(ensemble=False)`` computes them, with the held-out side chosen here: the
scores come from ``svm.calibration_folds`` cross-validated fits whose held-out side is whole
speakers when the outer folds are by speaker, whole clips otherwise (see ``ser.models.inner_splits.split_units``),
and only original clips are scored (their augmented copies are on neither side), then one SVC is
fit on all rows. The balanced class weights reach both the SVC and the calibration (as sample
weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import _SigmoidCalibration
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted, validate_data

from ser.models.inner_splits import grouped_folds, split_units
from ser.section import Section

if TYPE_CHECKING:
    import optuna

    from ser.config import Params as AllParams

FILE = "svm.skops"
CHUNK = 2048  # rows of the kernel matrix computed at a time
SPACE_VERSION = 1  # bump when space() changes, so old studies are not resumed


class Params(Section):
    """params.yaml ``svm``."""

    C: float = Field(10.0, gt=0)
    gamma: float | Literal["scale", "auto"] = "scale"
    calibration_folds: int = Field(3, ge=2, description="speaker-grouped folds for the probability calibration")
    precompute_max_rows: int = Field(30000, ge=0, description="BLAS kernel matrix up to this many rows (8*n^2 bytes)")


def space(trial: optuna.Trial) -> dict:
    """Optuna's overrides of ``svm``: C, and gamma as 'scale' or a value."""
    gamma = "scale"
    if trial.suggest_categorical("gamma_kind", ["scale", "value"]) == "value":
        gamma = trial.suggest_float("gamma", 1e-5, 1e-1, log=True)
    return {"C": trial.suggest_float("C", 0.1, 100.0, log=True), "gamma": gamma}


def build(params: AllParams, seed: int = 0) -> Pipeline:
    """StandardScaler + RBF SVC with calibrated probabilities; all refit on each training fold."""
    p = params.svm
    svc = RbfSVC(C=p.C, gamma=p.gamma, calibration_folds=p.calibration_folds,
                 precompute_max_rows=p.precompute_max_rows, random_state=seed)
    return Pipeline([("scaler", StandardScaler()), ("svm", svc)])


class RbfSVC(ClassifierMixin, BaseEstimator):
    """SVC(kernel='rbf') with balanced class weights and cross-validated sigmoid calibration.

    ``fit(X, y, groups=None, clip_ids=None, aug=None)``: the calibration folds keep each speaker
    (``groups``, when there are two or more), else each clip (``clip_ids``, so augmented copies stay
    with their original), on one side, and score original clips only (``aug == 0``);
    ``fit_facts_`` says which. After fitting: ``svc_`` (on all rows), ``calibrators_`` (one sigmoid
    per class, one with two classes), ``classes_``.
    """

    def __init__(self, C: float = 10.0, gamma: float | str = "scale", class_weight: str | None = "balanced",
                 calibration_folds: int = 3, precompute_max_rows: int = 30000, cache_size: float = 1000,
                 random_state: int = 0):
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds
        self.precompute_max_rows = precompute_max_rows
        self.cache_size = cache_size
        self.random_state = random_state

    def fit(self, X, y, groups=None, clip_ids=None, aug=None) -> RbfSVC:
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        self.gamma_ = _gamma(self.gamma, X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        scored = None if aug is None else np.asarray(aug) == 0  # held-out scores of original clips only
        units, kind = split_units(len(y), groups, clip_ids, scored)
        folds = grouped_folds(codes, units, self.calibration_folds, self.random_state, scored)
        self.fit_facts_ = {"calibration_split": f"{len(folds)} folds by {kind}"}
        # Class weights as sample weights: libsvm scales C per sample exactly as class_weight does, and
        # the sigmoid calibration gets them too, so that the argmax of the calibrated probabilities
        # keeps the balance instead of sliding back to the majority class.
        weights = compute_sample_weight(self.class_weight, codes)
        self.precomputed_ = len(X) <= self.precompute_max_rows
        data = self._kernel(X) if self.precomputed_ else X

        def rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return data[np.ix_(a, b)] if self.precomputed_ else data[a]

        def svc(train: np.ndarray) -> SVC:
            model = SVC(kernel="precomputed" if self.precomputed_ else "rbf", C=self.C, gamma=self.gamma_,
                        cache_size=self.cache_size)
            return model.fit(rows(train, train), codes[train], sample_weight=weights[train])

        held = np.concatenate([h for _, h in folds])
        scores = np.vstack([_scores(svc(train), rows(h, train), len(self.classes_)) for train, h in folds])
        positive = [1] if len(self.classes_) == 2 else range(len(self.classes_))  # binary: the second class
        self.calibrators_ = [_SigmoidCalibration().fit(scores[:, i], codes[held] == c, sample_weight=weights[held])
                             for i, c in enumerate(positive)]
        everything = np.arange(len(y))
        self.svc_ = svc(everything)
        if self.precomputed_:  # libsvm reads only the support vectors' columns at predict time
            self.support_, self.n_train_ = self.svc_.support_, len(X)
            self.support_vectors_ = np.asarray(X, np.float32)[self.support_]
        return self

    def decision_function(self, X) -> np.ndarray:
        """The SVC's one-vs-rest scores, (n, classes), or (n,) with two classes."""
        check_is_fitted(self, "svc_")
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        if not self.precomputed_:
            return self.svc_.decision_function(X)
        out = []
        for start in range(0, len(X), CHUNK):
            K = np.zeros((min(CHUNK, len(X) - start), self.n_train_))
            K[:, self.support_] = self._kernel(X[start:start + CHUNK], self.support_vectors_)
            out.append(self.svc_.decision_function(K))
        return np.concatenate(out) if out else np.zeros((0,) if len(self.classes_) == 2 else (0, len(self.classes_)))

    def predict_proba(self, X) -> np.ndarray:
        """Sigmoid-calibrated probabilities (per class, then normalised, as scikit-learn's
        CalibratedClassifierCV does)."""
        scores = _scores(self.svc_, None, len(self.classes_), self.decision_function(X))
        if len(self.classes_) == 2:
            positive = self.calibrators_[0].predict(scores[:, 0])
            return np.column_stack([1 - positive, positive])
        proba = np.column_stack([cal.predict(scores[:, c]) for c, cal in enumerate(self.calibrators_)])
        total = proba.sum(1, keepdims=True)
        return np.divide(proba, total, out=np.full_like(proba, 1 / proba.shape[1]), where=total > 0)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def _kernel(self, A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
        """exp(-gamma·|a-b|²) as float64 (what libsvm reads), built in float32 row blocks; K(A, A)
        computes the upper triangle and mirrors it (half the matrix products)."""
        symmetric = B is None
        A = np.asarray(A, np.float32)
        B = A if symmetric else np.asarray(B, np.float32)
        aa = self.gamma_ * np.einsum("ij,ij->i", A, A)
        bb = aa if symmetric else self.gamma_ * np.einsum("ij,ij->i", B, B)
        B2 = B * np.float32(2 * self.gamma_)
        K = np.empty((len(A), len(B)))
        for start in range(0, len(A), CHUNK):
            stop = min(start + CHUNK, len(A))
            first = start if symmetric else 0
            block = A[start:stop] @ B2[first:].T  # 2·gamma·a·b
            block -= aa[start:stop, None]
            block -= bb[None, first:]
            np.minimum(block, 0, out=block)  # -gamma·|a-b|² <= 0 (rounding aside)
            np.exp(block, out=block)
            K[start:stop, first:] = block
            if symmetric:
                K[stop:, start:stop] = block[:, stop - start:].T
        return K


def _scores(svc, X, n_classes: int, decision: np.ndarray | None = None) -> np.ndarray:
    """One-vs-rest scores as (n, classes) columns (one column with two classes); a class the SVC
    did not see in training (an inner calibration fold can lack one) scores below every other."""
    d = svc.decision_function(X) if decision is None else decision
    if n_classes == 2:
        if len(svc.classes_) < 2:  # a fold with one class: every clip is that class
            return np.full((len(d), 1), 1.0 if svc.classes_[0] == 1 else -1.0)
        return np.asarray(d).reshape(-1, 1)
    d = np.asarray(d).reshape(len(d), -1)
    if len(svc.classes_) == n_classes:
        return d
    out = np.full((len(d), n_classes), (d.min() if d.size else 0.0) - 1.0)
    if len(svc.classes_) == 2:  # a binary SVC gives one column: the second class's score
        out[:, svc.classes_[1]], out[:, svc.classes_[0]] = d[:, 0], -d[:, 0]
    else:
        out[:, svc.classes_] = d
    return out


def _gamma(gamma: float | str, X: np.ndarray) -> float:
    """The value SVC would use: 'scale' = 1/(n_features·Var(X)), 'auto' = 1/n_features."""
    if gamma == "scale":
        var = float(np.var(X, dtype=np.float64))
        return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    return float(gamma)


# beyond skops' defaults (Pipeline, StandardScaler, SVC, arrays), only these plain classes may be
# instantiated on load; any other name in the file makes loading fail
TRUSTED = (f"{__name__}.RbfSVC", "sklearn.calibration._SigmoidCalibration")


def save(model: Pipeline, folder: Path) -> Path:
    """skops format: loading it instantiates only scikit-learn/numpy types and RbfSVC, never
    arbitrary code."""
    import skops.io as sio  # slow import (it loads torch): only here, so reading params stays fast

    path = Path(folder) / FILE
    sio.dump(model, path)
    return path


def load(folder: Path) -> Pipeline:
    import skops.io as sio

    path = Path(folder) / FILE
    trusted = [t for t in sio.get_untrusted_types(file=path) if t in TRUSTED]
    return sio.load(path, trusted=trusted)
