"""2-D UMAP of embeddings (standardised first, seeded)."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler


def embed_2d(X: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """Project standardised embeddings to 2-D; deterministic for a seed (single-threaded UMAP)."""
    import umap  # slow import (numba): only here

    Z = StandardScaler().fit_transform(X)
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(Z) - 1), min_dist=min_dist, random_state=seed)
    return reducer.fit_transform(Z).astype(np.float32)
