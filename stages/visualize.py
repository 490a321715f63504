"""visualize: embeddings/features.npz (+ sex from data/manifest.csv) -> results/umap.png, results/umap.csv.

Original clips only (augmented copies would draw each clip several times), at most
``umap.max_points`` of them (a seeded sample), coloured by emotion, speaker and, where the corpus
records it, sex: speaker clusters are the thing an emotion map most often shows instead.

With ``classifier: finetune`` extract stores the clips' audio, not embeddings: there is nothing to map,
and the figure says so (the fine-tuned encoder, ``models/backbone``, can serve as ``features.model``
of a frozen run to map its embeddings).
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ser.artifacts import read_json, read_table, write_csv
from ser.config import load_params
from ser.embeddings import FrameSet, read_embeddings
from ser.evaluation.names import dataset_label, feature_source, features_label
from ser.evaluation.plots import message_png, scatter_png
from ser.evaluation.umap2d import colourings, embed_2d
from ser.stage import run_stage

log = logging.getLogger("stages.visualize")


def main() -> None:
    params = load_params()
    X, meta = read_embeddings("embeddings/features.npz")
    if read_json("embeddings/features.json").get("identity", {}).get("extractor") == "audio":
        log.info("the rows are audio (classifier finetune): no embedding map")
        write_csv("results/umap.csv", pd.DataFrame(columns=["clip_id", "label", "speaker", "x", "y"]))
        message_png("No embedding map: with classifier finetune the extract stage stores audio, not embeddings.\n"
                    "Map the fine-tuned encoder's embeddings with a frozen run: features.model: models/backbone",
                    "results/umap.png")
        return
    keep = (meta["aug"] == 0).to_numpy()
    X, meta = X[keep], meta[keep].reset_index(drop=True)
    if len(X) > params.umap.max_points:
        rows = np.sort(np.random.default_rng(params.seed).choice(len(X), params.umap.max_points, replace=False))
        X, meta = X[rows], meta.iloc[rows].reset_index(drop=True)
    if isinstance(X, FrameSet):
        log.info("frame sequences: mapping each clip's mean frame (averaged over layers)")
        X = X.pooled()
    manifest = Path("data/manifest.csv")
    if manifest.is_file() and "sex" in pd.read_csv(manifest, nrows=0).columns:
        sex = read_table(manifest, usecols=["clip_id", "sex"]).drop_duplicates("clip_id")
        meta = meta.merge(sex, on="clip_id", how="left")
    log.info("UMAP of %d original clips x %d dims (PCA to %d first)", *X.shape, params.umap.pca_dims)
    xy = embed_2d(X, params.umap.n_neighbors, params.umap.min_dist, params.seed, params.umap.pca_dims)
    table = meta.drop(columns="aug").assign(x=xy[:, 0], y=xy[:, 1])
    write_csv("results/umap.csv", table)
    features = features_label(feature_source(read_json("embeddings/features.json")))
    scatter_png(xy, colourings(table), f"UMAP of {features} embeddings, {dataset_label(params.dataset)}, "
                f"{len(xy)} original clips", "results/umap.png")


if __name__ == "__main__":
    run_stage(main)
