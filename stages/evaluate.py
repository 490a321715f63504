"""evaluate: models/oof.csv -> results/metrics.json, results/predictions.csv, confusion and per-class PNGs."""

import logging

import pandas as pd

from ser.cli import run_stage
from ser.config import load_params
from ser.evaluate import evaluate
from ser.io import read_json, write_csv, write_json
from ser.plots import confusion_png, per_class_png

log = logging.getLogger("stages.evaluate")


def main() -> None:
    params = load_params()
    oof = pd.read_csv("models/oof.csv", dtype={"speaker": str, "clip_id": str})
    prepared = read_json("data/prepare.json")
    features = read_json("embeddings/features.json")
    context = {
        "dataset": params.dataset + (" (SYNTHETIC audio)" if params.dataset == "synthetic" else ""),
        "clips": prepared["clips"], "speakers": prepared["speakers"],
        "excluded_clips": prepared["excluded"] + features["failed"],
        "extractor": params.features.extractor, "classifier": params.classifier,
    }
    metrics = evaluate(oof, read_json("results/cv.json"), context)
    confusion = metrics.pop("confusion")
    write_json("results/metrics.json", metrics)
    write_csv("results/predictions.csv", oof[["clip_id", "actual", "predicted"]])
    context = metrics["context"]
    title = f"{context['dataset']} | {params.features.extractor} + {params.classifier} | {context['protocol']}"
    labels = context["labels"]
    confusion_png(confusion, labels, title, "results/confusion.png")
    per_class_png(metrics["per_class"], title, "results/per_class.png")
    log.info("%s: accuracy %.3f, UAR %.3f, macro F1 %.3f (%s)", context["dataset"], metrics["accuracy"],
             metrics["uar"], metrics["macro_f1"], context["protocol"])


if __name__ == "__main__":
    run_stage(main)
