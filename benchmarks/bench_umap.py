"""Time the visualize stage's UMAP on clustered random data shaped like SSL embeddings.

    python benchmarks/bench_umap.py                  # 30 000 x 1024, PCA to 50, seeded (what visualize runs)
    python benchmarks/bench_umap.py --pca 0          # no PCA: exact neighbours on all 1024 dims
    python benchmarks/bench_umap.py --plain          # umap.UMAP(random_state=0) on the standardised data
    python benchmarks/bench_umap.py --unseeded       # parallel UMAP layout (not reproducible)

Run each setting in a fresh process: the time includes importing umap and numba's compilation,
as the stage pays them. CPU time is printed too: on a shared machine (load average above the core
count) wall time is inflated, CPU time much less. It also reports how much of each point's
neighbourhood the PCA keeps and how well the 2-D map separates the emotion clusters (kNN
accuracy, 2-D vs the full space).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def clustered(n: int, dim: int, classes: int = 6, speakers: int = 91, latent: int = 32, spread: float = 0.5,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Emotion clusters (means ``spread`` apart, in units of the clip noise) plus a larger
    per-speaker offset in a ``latent``-dim subspace, mixed into ``dim`` dims with isotropic noise;
    returns (X float32, emotion label). Overlapping, like real emotion embeddings."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, n)
    speaker = rng.integers(0, speakers, n)
    z = rng.normal(0, spread, (classes, latent))[label] + rng.normal(0, 1, (speakers, latent))[speaker]
    z += rng.normal(0, 1, (n, latent))
    X = z @ rng.normal(0, 1 / np.sqrt(latent), (latent, dim)) + rng.normal(0, 0.5, (n, dim))
    return X.astype(np.float32), label


def neighbours_kept(X: np.ndarray, Z: np.ndarray, k: int = 15, sample: int = 3000, seed: int = 0) -> float:
    """Mean fraction of each point's k nearest neighbours (standardised full space) that are also
    among its k nearest in the reduced space, on a random sample of points."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    rows = np.random.default_rng(seed).choice(len(X), min(sample, len(X)), replace=False)
    full = StandardScaler().fit_transform(X)[rows]
    a = NearestNeighbors(n_neighbors=k + 1).fit(full).kneighbors(return_distance=False)
    b = NearestNeighbors(n_neighbors=k + 1).fit(Z[rows]).kneighbors(return_distance=False)
    return float(np.mean([len(set(p) & set(q)) / len(p) for p, q in zip(a, b)]))


def knn_accuracy(X: np.ndarray, y: np.ndarray, sample: int = 5000, seed: int = 0) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rows = np.random.default_rng(seed).choice(len(X), min(sample, len(X)), replace=False)
    return float(cross_val_score(KNeighborsClassifier(15), X[rows], y[rows], cv=5).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--pca", type=int, default=50, help="PCA dimensions before UMAP (0 = none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unseeded", action="store_true", help="no random_state: parallel, not reproducible")
    ap.add_argument("--plain", action="store_true",
                    help="plain seeded umap.UMAP on the standardised data (its own approximate neighbour search)")
    ap.add_argument("--no-quality", action="store_true", help="skip the neighbourhood and kNN checks")
    args = ap.parse_args()

    X, y = clustered(args.n, args.dim, seed=args.seed)
    mode = "plain umap.UMAP, no PCA" if args.plain else f"embed_2d, PCA {args.pca or 'off'}"
    print(f"{args.n} x {args.dim}, {mode}, {'unseeded (parallel)' if args.unseeded else 'seeded'}; "
          f"{os.cpu_count()} CPUs ({platform.machine()}), load average {os.getloadavg()[0]:.1f}", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    import umap  # noqa: F401  (timed: numba start-up is part of what the stage pays)

    from ser.evaluation.umap2d import embed_2d, reduce
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    seed = None if args.unseeded else args.seed
    if args.plain:
        from sklearn.preprocessing import StandardScaler

        xy = umap.UMAP(random_state=seed).fit_transform(StandardScaler().fit_transform(X))
    else:
        xy = embed_2d(X, seed=seed, pca_dims=args.pca)
    t_embed = time.perf_counter() - t1
    cpu = time.process_time() - c0
    print(f"import umap {t_import:.1f} s, 2-D map {t_embed:.1f} s, total {t_import + t_embed:.1f} s wall, "
          f"{cpu:.1f} s CPU (load average now {os.getloadavg()[0]:.1f})", flush=True)

    if not args.no_quality:
        if args.pca and not args.plain:
            t2 = time.perf_counter()
            Z = reduce(X, args.pca, args.seed)
            print(f"  of which standardise + PCA: {time.perf_counter() - t2:.1f} s", flush=True)
            print(f"  15-NN kept by PCA to {args.pca}: {neighbours_kept(X, Z):.1%}")
        print(f"  emotion 15-NN accuracy: full space {knn_accuracy(X, y):.3f}, 2-D map {knn_accuracy(xy, y):.3f}")


if __name__ == "__main__":
    main()
