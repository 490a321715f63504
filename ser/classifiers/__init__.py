"""Classifier registry: each module has ``build(params, seed)`` returning a scikit-learn style
estimator (fit / predict / predict_proba, scaling inside), plus ``save(model, dir)`` and
``load(dir)`` in a format that does not execute code when loaded.

Adding a classifier means one module in this package and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY = {
    "svm": "ser.classifiers.svm",
}


def get(name: str) -> ModuleType:
    """Import the module of one classifier by its params.yaml name."""
    return importlib.import_module(REGISTRY[name])
