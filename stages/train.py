"""train: embeddings/features.npz -> models/ (final model + model.json), models/oof.csv,
results/cv.json, results/learning_curves.csv (per-epoch history; only the header for classifiers
without epochs)."""

from pathlib import Path

from ser.cli import run_stage
from ser.config import load_params
from ser.io import read_embeddings, read_json, write_csv, write_json
from ser.train import train


def main() -> None:
    params = load_params()
    X, meta = read_embeddings("embeddings/features.npz")
    settings = read_json("embeddings/features.json")["settings"]
    trained = train(X, meta, params, settings, Path("models"))
    write_csv("models/oof.csv", trained.oof)
    write_json("results/cv.json", trained.summary)
    write_csv("results/learning_curves.csv", trained.curves)


if __name__ == "__main__":
    run_stage(main)
