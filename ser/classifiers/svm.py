"""RBF-kernel SVM on standardised features, balanced class weights, probability outputs."""

from __future__ import annotations

from pathlib import Path

import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

FILE = "svm.skops"


def build(params, seed: int = 0) -> Pipeline:
    """StandardScaler + SVC(rbf) with sigmoid-calibrated probabilities; all refit on each training fold."""
    p = params.svm
    svc = SVC(kernel="rbf", C=p.C, gamma=p.gamma, class_weight="balanced", random_state=seed)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False))


def save(model: Pipeline, folder: Path) -> Path:
    """skops format: loading it instantiates only scikit-learn/numpy types, never arbitrary code."""
    path = Path(folder) / FILE
    sio.dump(model, path)
    return path


def load(folder: Path) -> Pipeline:
    path = Path(folder) / FILE
    trusted = [t for t in sio.get_untrusted_types(file=path) if t.startswith(("sklearn.", "numpy."))]
    return sio.load(path, trusted=trusted)
