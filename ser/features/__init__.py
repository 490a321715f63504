"""Feature extractor registry: each module has ``build(params) -> Extractor``.

Adding an extractor means one module in this package and one line here.

A vector's identity (:func:`identity`) is what decides it: the extractor and its settings, a
fingerprint of the model weights computed from the weight files, :data:`FEATURES_VERSION` and the
major.minor versions of the libraries that compute it. It is the cache key and what predict checks.
Where the model lives, the device and the dtype are deliberately not part of it: the same weights
give the same vectors from any folder, and fp16 on CUDA differs from fp32 on a CPU only by rounding
(~1e-3), so a model trained on a GPU predicts on a CPU.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Protocol

import numpy as np

REGISTRY = {
    "ssl": "ser.features.ssl",          # WavLM / HuBERT / wav2vec2 / data2vec-audio (features.model)
    "whisper": "ser.features.whisper",  # a Whisper checkpoint's encoder (features.model)
    "egemaps": "ser.features.egemaps",  # openSMILE eGeMAPSv02 functionals, 88 dims
    "mfcc": "ser.features.mfcc",        # MFCC and delta statistics
}
FEATURES_VERSION = 1  # bump whenever code here changes what a vector holds (pooling, chunking, inputs)
COMMON_LIBRARIES = ("numpy", "soundfile", "soxr")  # decode and resample every clip


class Extractor(Protocol):
    """Turns mono waveforms at ``sample_rate`` into one fixed-size vector each, or with
    ``features.pooling: none`` into one (frames, layers, dim) float16 array each
    (:mod:`ser.features.frames`).

    A clip's result must not depend on the other clips of its batch.
    """

    sample_rate: int

    def identity(self) -> dict:
        """What decides the vectors (:func:`identity`): the cache key, stored with models, checked by predict."""

    def transform(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Embed a batch of clips: (len(waves), dim) float32, or a list of frame arrays."""


def build(params, audio: bool = False) -> Extractor:
    """The extractor named by ``features.extractor`` (neural ones load their model here, before any work),
    or with ``audio`` the clips' audio itself (for a classifier that fine-tunes that encoder:
    :mod:`ser.features.audio`); behind the ``preprocess`` chain when one is set (:class:`Preprocessed`)."""
    name = "ser.features.audio" if audio else REGISTRY[params.features.extractor]
    extractor = importlib.import_module(name).build(params)
    if not params.preprocess.active:
        return extractor
    from ser.preprocess.pipeline import Preprocessor

    return Preprocessed(extractor, Preprocessor(params.preprocess, extractor.sample_rate))


def preprocessor(extractor: Extractor) -> Callable[[np.ndarray], np.ndarray] | None:
    """The chain the clip readers apply to each wave before augmentation and ``transform`` (None: none)."""
    return getattr(extractor, "preprocess", None)


def blocks(extractor: Extractor) -> dict | None:
    """How the extractor's vectors split into encoder layers (``NeuralEncoder.blocks``), None for one block."""
    method = getattr(extractor, "blocks", None)
    return method() if method else None


class Preprocessed:
    """An extractor whose clips are cleaned first (``preprocess``, run by the clip readers, not by
    ``transform``); its identity holds the chain's, so the cache, the model card and predict carry it."""

    def __init__(self, extractor: Extractor, preprocess: Callable[[np.ndarray], np.ndarray]):
        self.extractor, self.preprocess = extractor, preprocess

    def __getattr__(self, name: str):
        return getattr(self.extractor, name)

    def identity(self) -> dict:
        return {**self.extractor.identity(), "preprocess": self.preprocess.identity()}

    def transform(self, waves: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        return self.extractor.transform(waves)


def identity(extractor: str, libraries: tuple[str, ...], **settings) -> dict:
    """``settings`` of ``extractor`` plus :data:`FEATURES_VERSION` and the major.minor versions of
    the libraries (the common ones and ``libraries``) that compute its vectors."""
    names = sorted({*COMMON_LIBRARIES, *libraries})
    return {"extractor": extractor, **settings, "features_version": FEATURES_VERSION,
            "libraries": {n: ".".join(version(n).split(".")[:2]) for n in names}}


def per_clip(vector: Callable[[np.ndarray], np.ndarray], waves: list[np.ndarray]) -> np.ndarray:
    """``vector`` of each wave, on a few threads (numpy, librosa and openSMILE release the GIL)."""
    with ThreadPoolExecutor(max(1, min(len(waves), os.cpu_count() or 1))) as pool:
        return np.stack(list(pool.map(vector, waves))).astype(np.float32)
