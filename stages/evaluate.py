"""evaluate: models/oof.csv, results/cv.json, results/learning_curves.csv -> results/metrics.json,
results/predictions.csv and PNGs (confusion, per class, spread across folds, reliability, risk-coverage and
novelty, learning curves, learned layer weights)."""

import logging

from ser.artifacts import read_json, read_table, write_csv, write_json
from ser.config import load_params
from ser.evaluation.layer_plot import layer_weights_png
from ser.evaluation.names import feature_source, features_label
from ser.evaluation.plots import (
    confusion_png,
    fold_spread_png,
    learning_curves_png,
    message_png,
    per_class_png,
    reliability_png,
)
from ser.evaluation.report import evaluate, fold_table, labels_of, left_out, read_learning_curves, run_context
from ser.evaluation.trust_plot import risk_coverage_png
from ser.models.calibration import calibrated_oof, oof_arrays
from ser.stage import run_stage

log = logging.getLogger("stages.evaluate")


def main() -> None:
    params = load_params()
    oof = read_table("models/oof.csv")
    cv_summary = read_json("results/cv.json")
    features_json = read_json("embeddings/features.json")
    context = run_context(oof, read_json("data/prepare.json"), features_json, cv_summary["protocol"], params.dataset,
                          params.classifier)
    metrics, confusion = evaluate(oof, cv_summary, context, params.seed)
    cross = read_json("results/cross_corpus.json")
    if cross:  # the crosstest stage's blocks, one per test corpus (final model)
        metrics["cross_corpus"] = cross
    write_json("results/metrics.json", metrics)
    write_csv("results/predictions.csv", oof[["clip_id", "actual", "predicted"]])
    write_csv("results/left_out.csv", left_out(read_table("data/excluded.csv"), features_json,
                                               read_table("results/cross_corpus.csv")))

    features = features_label(feature_source(features_json))
    title = f"{context['dataset']} | {features} + {params.classifier} | {context['protocol']}"
    labels = labels_of(oof)
    confusion_png(confusion, labels, title, "results/confusion.png")
    per_class_png(metrics["per_class"], title, "results/per_class.png")
    fold_spread_png(fold_table(cv_summary), metrics, title, "results/cv_folds.png", chance=1 / len(labels))
    if "calibration" in cv_summary:
        before, y = oof_arrays(oof, labels)
        reliability_png(before, calibrated_oof(oof, labels, cv_summary["calibration"]), y, cv_summary["calibration"],
                        title, "results/reliability.png")
    if "novelty" in cv_summary:
        _, y = oof_arrays(oof, labels)
        risk_coverage_png(calibrated_oof(oof, labels, cv_summary.get("calibration", {"method": "none"})), y,
                          oof["novelty"].to_numpy(), cv_summary["novelty"], title, "results/risk_coverage.png")
    else:
        message_png("no novelty scores in results/cv.json: written by an older train stage (dvc repro train)",
                    "results/risk_coverage.png")
    learning_curves_png(read_learning_curves("results/learning_curves.csv"), params.classifier, title,
                        "results/learning_curves.png")
    layer_weights_png(cv_summary, params.classifier, title, "results/layer_weights.png")
    log.info("%s: pooled over all out-of-fold predictions accuracy %.3f, UAR %.3f, macro F1 %.3f (%s, %d clips); "
             "fold-mean UAR %.3f +- %.3f",
             context["dataset"], metrics["accuracy"], metrics["uar"], metrics["macro_f1"], context["protocol"],
             context["clips"], metrics["cv"]["uar_mean"], metrics["cv"]["uar_std"])


if __name__ == "__main__":
    run_stage(main)
