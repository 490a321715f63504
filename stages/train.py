"""train: embeddings/features.npz -> models/ (final model + model.json), models/oof.csv,
results/cv.json, models/calibration.json (temperature scaling fit on the
out-of-fold predictions), results/learning_curves.csv (per-epoch history; only the header for classifiers
without epochs)."""

import os

# OpenMP threads (XGBoost, scikit-learn) sleep at barriers instead of spinning: 2% slower on an idle
# machine, far faster on a busy one (benchmarks/README.md). Read when libgomp loads, so before any import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

from ser.calibration import calibrate_oof
from ser.cli import run_stage
from ser.config import load_params
from ser.io import read_embeddings, read_json, read_table, write_csv, write_json
from ser.segment import training_window
from ser.train import train


def main() -> None:
    params = load_params()
    X, meta = read_embeddings("embeddings/features.npz")
    trained = train(X, meta, params, read_json("embeddings/features.json"), Path("models"))
    model_json = read_json("models/model.json")
    manifest = read_table("data/manifest.csv", usecols=["clip_id", "duration"])
    used = manifest["clip_id"].isin(meta["clip_id"])
    durations = manifest.loc[used, "duration"]
    model_json["max_clip_seconds"] = training_window(durations)  # predict: longer recordings are cut
    model_json["median_clip_seconds"] = training_window(durations, 0.5)  # ... into windows about this long
    write_json("models/model.json", model_json)
    calibration = {**calibrate_oof(trained.oof, model_json["labels"]), "labels": model_json["labels"]}
    write_json("models/calibration.json", calibration)
    trained.summary["calibration"] = {k: calibration[k] for k in ("method", "reason", "temperature", "ece_before",
                                                                   "ece_after", "nll_before", "nll_after", "candidate",
                                                                   "n", "protocol", "fold_temperatures")}
    write_csv("models/oof.csv", trained.oof)
    write_json("results/cv.json", trained.summary)
    write_csv("results/learning_curves.csv", trained.curves)


if __name__ == "__main__":
    run_stage(main)
