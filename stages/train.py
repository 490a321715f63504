"""train: embeddings/features.npz -> models/ (final model + model.json, its card: labels, feature
identity, windows, temperature calibration), models/oof.csv, results/cv.json,
results/learning_curves.csv (per-epoch history; only the header for classifiers without epochs).

With ``classifier: finetune`` the rows are the clips' audio (data/route.json) and the manifest's
transcripts (its ``text`` column, where the corpus has one) come along for the CTC head; with pooled
corpora (``dataset: multi``) its ``corpus`` column, for leave-one-corpus-out folds and per-corpus metrics."""

import os

# OpenMP threads (XGBoost, scikit-learn) sleep at barriers instead of spinning: 2% slower on an idle
# machine, far faster on a busy one (docs/benchmarks.md). Read when libgomp loads, so before any import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ser.artifacts import read_json, read_table, write_csv, write_json
from ser.config import load_params
from ser.embeddings import read_embeddings, with_manifest
from ser.models.train import train
from ser.stage import run_stage


def main() -> None:
    params = load_params()
    X, meta = read_embeddings("embeddings/features.npz")
    manifest = read_table("data/manifest.csv")
    durations = manifest.loc[manifest["clip_id"].isin(meta["clip_id"]), "duration"]
    meta = with_manifest(meta, manifest)
    trained = train(X, meta, params, read_json("embeddings/features.json"), "models", durations)
    write_csv("models/oof.csv", trained.oof)
    write_json("results/cv.json", trained.summary)
    write_csv("results/learning_curves.csv", trained.curves)


if __name__ == "__main__":
    run_stage(main)
