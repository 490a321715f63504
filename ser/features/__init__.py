"""Feature extractor registry: each module has ``build(params) -> Extractor``.

Adding an extractor means one module in this package and one line here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

REGISTRY = {
    "ssl": "ser.features.ssl",          # WavLM / HuBERT / wav2vec2 / data2vec-audio (features.model)
    "whisper": "ser.features.whisper",  # a Whisper checkpoint's encoder (features.model)
    "egemaps": "ser.features.egemaps",  # openSMILE eGeMAPSv02 functionals, 88 dims
    "mfcc": "ser.features.mfcc",        # MFCC and delta statistics
}


class Extractor(Protocol):
    """Turns mono waveforms at ``sample_rate`` into one fixed-size vector each.

    A clip's vector must not depend on the other clips of its batch.
    """

    sample_rate: int

    def settings(self) -> dict:
        """Everything that changes the vectors (stored with models, used as the cache key)."""

    def transform(self, waves: list[np.ndarray]) -> np.ndarray:
        """Embed a batch of clips: (len(waves), dim) float32."""


def build(params) -> Extractor:
    """The extractor named by ``features.extractor`` (neural ones load their model here, before any work)."""
    return importlib.import_module(REGISTRY[params.features.extractor]).build(params)


def per_clip(vector: Callable[[np.ndarray], np.ndarray], waves: list[np.ndarray]) -> np.ndarray:
    """``vector`` of each wave, on a few threads (numpy, librosa and openSMILE release the GIL)."""
    with ThreadPoolExecutor(max(1, min(len(waves), os.cpu_count() or 1))) as pool:
        return np.stack(list(pool.map(vector, waves))).astype(np.float32)
