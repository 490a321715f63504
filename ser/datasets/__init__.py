"""Corpus registry: each module has ``scan(root) -> DataFrame`` (and cremad a ``download``).

Adding a corpus means one module in this package and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY = {
    "cremad": "ser.datasets.cremad",
    "ravdess": "ser.datasets.ravdess",
    "tess": "ser.datasets.tess",
    "savee": "ser.datasets.savee",
    "emodb": "ser.datasets.emodb",
    "folder": "ser.datasets.folder",
    "synthetic": "ser.datasets.synthetic",
}


def get(name: str) -> ModuleType:
    """Import the module of one corpus by its params.yaml name."""
    return importlib.import_module(REGISTRY[name])
