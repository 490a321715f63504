"""Novelty scores: how unlike the training clips an input is (higher = more novel).

- ``mahalanobis``: the smallest Mahalanobis distance to a class mean of the standardised features, one
  covariance shared by the classes with Ledoit-Wolf shrinkage (Lee et al., 2018);
- ``knn``: the Euclidean distance to the k-th nearest training clip in the standardised features (after
  Sun et al., 2022, who normalise deep features to unit length first: on these features that hides how
  loud or spread out an input is, and noise was not told apart);
- ``msp``: one minus the top calibrated class probability (Hendrycks and Gimpel, 2017), which needs no
  features: the only choice for a classifier that reads audio (``finetune``).

The features are what the classifier reads (one vector per clip) or, for a frame sequence, a summary of it: its
mean frame averaged over layers (:meth:`ser.embeddings.FrameSet.pooled`), not the frames and layer mix the
sequence classifier reads. A fitted score is saved as ``novelty.npz`` (arrays only,
read back without pickle); its threshold lives in the model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser.artifacts import atomic_path

METHODS = ("mahalanobis", "knn", "msp")
FILE = "novelty.npz"


def vectors(X) -> np.ndarray:
    """One float64 vector per row of X: the row itself, or a frame sequence's mean frame."""
    return np.asarray(X.pooled() if hasattr(X, "pooled") else X, np.float64)


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(len(A), len(B)) squared Euclidean distances, never below 0."""
    return np.maximum((A ** 2).sum(1)[:, None] - 2 * A @ B.T + (B ** 2).sum(1)[None], 0.0)


@dataclass
class Novelty:
    """A fitted novelty score: ``score(V, proba)`` per row, higher = less like the training clips."""

    method: str
    k: int = 10
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _index: Any = field(default=None, init=False, repr=False, compare=False)  # knn: the bank's neighbours index

    @property
    def needs_vectors(self) -> bool:
        return self.method != "msp"

    @classmethod
    def fit(cls, method: str, V: np.ndarray | None, y: np.ndarray, k: int = 10) -> Novelty:
        """Fit ``method`` on training vectors ``V`` (None for msp) with class indices ``y``."""
        if method not in METHODS:
            raise ValueError(f"trust.novelty: {method!r} is not one of {', '.join(METHODS)}")
        if method == "msp":
            return cls(method, k)
        mean = V.mean(0)
        scale = V.std(0)
        scale[scale < 1e-8] = 1.0
        Z = (V - mean) / scale
        if method == "knn":
            return cls(method, k, {"mean": mean, "scale": scale, "bank": Z.astype(np.float32)})
        from sklearn.covariance import LedoitWolf

        y = np.asarray(y)
        classes = np.unique(y)
        centres = np.stack([Z[y == c].mean(0) for c in classes])
        residuals = Z - centres[np.searchsorted(classes, y)]
        precision = np.linalg.inv(LedoitWolf(assume_centered=True, store_precision=False).fit(residuals).covariance_)
        W = np.linalg.cholesky((precision + precision.T) / 2)  # d^2 = |(z - centre) @ W|^2
        return cls(method, k, {"mean": mean, "scale": scale, "W": W, "centres": centres @ W})

    def score(self, V: np.ndarray | None, proba: np.ndarray) -> np.ndarray:
        """Novelty of each row from its vector (``V``; unused by msp) and calibrated probabilities."""
        if self.method == "msp":
            return 1.0 - np.asarray(proba, np.float64).max(1)
        a = self.arrays
        Z = (np.asarray(V, np.float64) - a["mean"]) / a["scale"]
        if self.method == "knn":
            return self._neighbours().kneighbors(Z, return_distance=True)[0][:, -1]
        return np.sqrt(squared_distances(Z @ a["W"], a["centres"]).min(1))

    def _neighbours(self):
        """The training bank's neighbours index (built once): queries are answered in chunks, never as a whole
        query x bank distance matrix."""
        if self._index is None:
            from sklearn.neighbors import NearestNeighbors

            bank = self.arrays["bank"].astype(np.float64)
            self._index = NearestNeighbors(n_neighbors=min(self.k, len(bank))).fit(bank)
        return self._index

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, method=np.array(self.method), k=np.array(self.k), **self.arrays)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Novelty:
        with np.load(Path(folder) / FILE, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name not in ("method", "k")}
            return cls(str(data["method"]), int(data["k"]), arrays)
