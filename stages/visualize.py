"""visualize: embeddings/features.npz -> results/umap.png and results/umap.csv (original clips only)."""

import logging

import numpy as np
import pandas as pd

from ser.cli import run_stage
from ser.config import load_params
from ser.io import read_embeddings, write_csv
from ser.plots import scatter_png
from ser.umap2d import embed_2d

log = logging.getLogger("stages.visualize")


def main() -> None:
    params = load_params()
    X, meta = read_embeddings("embeddings/features.npz")
    keep = (meta["aug"] == 0).to_numpy()
    X, meta = X[keep], meta[keep].reset_index(drop=True)
    if len(X) > params.umap.max_points:
        rows = np.sort(np.random.default_rng(params.seed).choice(len(X), params.umap.max_points, replace=False))
        X, meta = X[rows], meta.iloc[rows].reset_index(drop=True)
    log.info("UMAP of %d clips x %d dims", *X.shape)
    xy = embed_2d(X, params.umap.n_neighbors, params.umap.min_dist, params.seed)
    write_csv("results/umap.csv", pd.concat([meta[["clip_id", "label", "speaker"]],
                                             pd.DataFrame(xy, columns=["x", "y"])], axis=1))
    name = params.dataset + (" (SYNTHETIC audio)" if params.dataset == "synthetic" else "")
    scatter_png(xy, {"emotion": meta["label"].to_numpy(), "speaker": meta["speaker"].to_numpy()},
                f"UMAP of {params.features.extractor} embeddings, {name}", "results/umap.png")


if __name__ == "__main__":
    run_stage(main)
