"""``features.normalize: speaker``: each speaker's vectors standardised with that speaker's own statistics.

Per feature, a speaker's rows have the mean and standard deviation of that speaker's original clips
subtracted and divided out (augmented copies use their speaker's figures too). It removes much of what
tells voices apart, and it is **transductive**: the test speakers' statistics come from their own
(unlabelled) clips, so a user needs several recordings of a new speaker before predicting, and every
number measured with it is labelled so (:data:`TRANSDUCTIVE`).
"""

from __future__ import annotations

import numpy as np

TRANSDUCTIVE = ", transductive: features standardised per speaker with each test speaker's own clips"
MIN_CLIPS = 2


def standardise(X: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``X`` standardised with the mean and std of ``reference`` (rows of one speaker)."""
    if len(reference) < MIN_CLIPS:
        raise ValueError(f"speaker normalisation needs at least {MIN_CLIPS} clips of a speaker, got {len(reference)}")
    reference = np.asarray(reference, np.float64)
    scale = reference.std(0)
    scale[scale < 1e-8] = 1.0
    return ((np.asarray(X, np.float64) - reference.mean(0)) / scale).astype(np.float32)


def by_speaker(X: np.ndarray, speakers: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Every row standardised with its speaker's original rows (``original``: aug == 0)."""
    out = np.empty(X.shape, np.float32)
    speakers, original = np.asarray(speakers), np.asarray(original, bool)
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        try:
            out[rows] = standardise(X[rows], X[rows & original])
        except ValueError as err:
            raise ValueError(f"features.normalize: speaker: speaker {speaker}: {err}; set features.normalize: none"
                             ) from None
    return out
