"""Synthetic embeddings with class structure and speaker offsets, for classifier, CV and tuning tests
(and the training benchmark): no audio, no extraction, just the shapes features.npz has."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_embeddings(clips: int = 240, dim: int = 32, speakers: int = 12, classes: int = 4, copies: int = 0,
                    separation: float = 1.5, speaker_shift: float = 1.0, latent: int = 8,
                    weights: list[float] | None = None, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """(X float32, meta with clip_id, label, speaker, aug), like ``read_embeddings`` returns.

    Classes differ by a mean in a ``latent``-dimensional subspace (``separation`` apart in units of
    the within-class spread); each speaker shifts all their clips by an offset of size
    ``speaker_shift``, so speaker-independent folds are harder than shared-speaker ones. Each clip
    gets ``copies`` augmented rows (aug = 1..copies): the original plus a little noise.
    ``weights`` makes the classes imbalanced (relative frequencies).
    """
    rng = np.random.default_rng(seed)
    names = [f"class{c}" for c in range(classes)]
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    label = rng.choice(classes, size=clips, p=p)
    speaker = rng.integers(0, speakers, size=clips)
    speaker[:speakers] = np.arange(speakers)  # every speaker has at least one clip
    means = rng.normal(0, separation, (classes, latent))
    offsets = rng.normal(0, speaker_shift, (speakers, latent))
    mixing = rng.normal(0, 1 / np.sqrt(latent), (latent, dim))
    z = means[label] + offsets[speaker] + rng.normal(0, 1, (clips, latent))
    X = z @ mixing + rng.normal(0, 0.5, (clips, dim))
    rows = [X] + [X + rng.normal(0, 0.3, X.shape) for _ in range(copies)]
    meta = pd.DataFrame({
        "clip_id": np.tile([f"clip{i:05d}" for i in range(clips)], copies + 1),
        "label": np.tile(np.array(names)[label], copies + 1),
        "speaker": np.tile([f"spk{s:03d}" for s in speaker], copies + 1),
        "aug": np.repeat(np.arange(copies + 1), clips),
    })
    return np.vstack(rows).astype(np.float32), meta
