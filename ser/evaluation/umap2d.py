"""2-D UMAP of embeddings: standardise, PCA to ``pca_dims``, exact neighbours, then seeded UMAP.

Why not just ``umap.UMAP(random_state=seed).fit_transform(X)``: on 30 000 x 1024 with 2 cores that
takes about two minutes, most of it in the approximate neighbour search (pynndescent) and in
compiling it with numba; this takes under one (docs/benchmarks.md, ## UMAP). PCA to 50 dims kept
~97% of each point's 15 nearest neighbours on the benchmark's data, an exact neighbour search on 50
dims takes seconds (BLAS, no compilation) and is deterministic, and UMAP gets the neighbours
precomputed. ``random_state`` makes UMAP's layout single-threaded (its parallel SGD is not
reproducible): the map must be repeatable, and on 2 cores the parallel layout was no faster anyway.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

EXACT_KNN_MAX = 60_000
"""Up to this many points the neighbours are found exactly (O(n^2), ~6 s at 30 000); above it, UMAP's
own approximate search, whose cost grows about linearly."""


def reduce(X: np.ndarray, pca_dims: int = 50, seed: int = 0) -> np.ndarray:
    """Standardise each dimension, then keep the first ``pca_dims`` principal components
    (``pca_dims=0``, or data with no more dimensions than that: standardised only)."""
    Z = StandardScaler().fit_transform(np.asarray(X, dtype=np.float32))
    if 0 < pca_dims < min(Z.shape):
        Z = PCA(pca_dims, random_state=seed).fit_transform(Z)
    return np.ascontiguousarray(Z, dtype=np.float32)


def embed_2d(X: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int | None = 0,
             pca_dims: int = 50) -> np.ndarray:
    """(n, 2) float32 coordinates, identical for the same data and seed. ``seed=None`` lets UMAP's
    layout run in parallel, not reproducibly (for benchmarks)."""
    import umap  # slow import (numba): only here

    if len(X) < 4:
        raise ValueError(f"UMAP needs at least 4 points, got {len(X)}")
    Z = reduce(X, pca_dims, 0 if seed is None else seed)
    k = min(n_neighbors, len(Z) - 1)
    knn = None
    if len(Z) <= EXACT_KNN_MAX:
        dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(Z).kneighbors(Z)
        knn = (idx, dist.astype(np.float32), None)
    reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, random_state=seed, n_jobs=1 if seed is not None else -1,
                        precomputed_knn=knn or (None, None, None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")  # we never call transform
        warnings.filterwarnings("ignore", message="Graph is not fully connected")  # well-separated clusters
        return reducer.fit_transform(Z).astype(np.float32)


def colourings(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """What to colour the map by: emotion and speaker, and sex when ``table`` has a ``sex`` column
    with two or more values (unknown ones shown as 'unknown')."""
    panels = {"emotion": table["label"].to_numpy(str), "speaker": table["speaker"].to_numpy(str)}
    if "sex" in table:
        sex = table["sex"].fillna("unknown").astype(str).str.strip().replace("", "unknown").to_numpy(str)
        if len(set(sex)) >= 2:
            panels["sex"] = sex
    return panels
