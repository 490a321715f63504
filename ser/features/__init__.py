"""Feature extractor registry: each module has ``build(params) -> Extractor``.

Adding an extractor means one module in this package and one line here.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

REGISTRY = {
    "mfcc": "ser.features.mfcc",
}


class Extractor(Protocol):
    """Turns mono waveforms at ``sample_rate`` into one fixed-size vector each."""

    sample_rate: int

    def settings(self) -> dict:
        """Everything that changes the vectors (stored with models, used as a cache key)."""

    def transform(self, waves: list[np.ndarray]) -> np.ndarray:
        """Embed a batch of clips: (len(waves), dim) float32."""


def build(params) -> Extractor:
    """The extractor named by ``features.extractor``."""
    return importlib.import_module(REGISTRY[params.features.extractor]).build(params)
