"""Turn out-of-fold predictions into results/metrics.json: flat enough for ``dvc metrics show/diff``.

DVC flattens nested keys (``cv.uar_mean``, ``per_class.angry.recall``; ``dvc metrics show`` also
sorts them; so a dot inside a label is written as ``_``), shows strings as they are and silently
drops lists and nulls; so this file holds numbers and short strings only, and the long-form
protocol stays in results/cv.json.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ser.evaluation.bootstrap import speaker_bootstrap
from ser.evaluation.metrics import HEADLINE, scores
from ser.evaluation.names import dataset_label, feature_source, short_model

DIGITS = 4


def labels_of(oof: pd.DataFrame) -> list[str]:
    """The classes the model was trained on: the ``p_<label>`` columns of models/oof.csv."""
    return sorted(c.removeprefix("p_") for c in oof.columns if c.startswith("p_"))


def short_protocol(protocol: str) -> str:
    """'5-fold speaker-independent CV (StratifiedGroupKFold by speaker)' -> '5-fold speaker-independent CV';
    a partial evaluation (cv.max_folds) keeps its label: '..., only the first 1 of its 5 folds evaluated',
    cv.tta its 'TTA' and speaker normalisation (features.normalize: speaker) its 'transductive'."""
    short = protocol.split(" (")[0]
    if "only the first" in protocol:
        short += ", " + protocol[protocol.index("only the first"):].split(" (cv.max_folds)")[0]
    if "test-time augmentation" in protocol:
        short += ", TTA"
    if "transductive" in protocol:
        short += (", transductive: corpus-normalised with the test corpus's clips" if "per corpus" in protocol else
                  ", transductive: speaker-normalised with the test speakers' clips")
    return short


def run_context(oof: pd.DataFrame, prepared: dict, features: dict, protocol: str, dataset: str,
                classifier: str) -> dict:
    """What the numbers were measured on: short strings and counts only."""
    settings = feature_source(features)
    return {
        "dataset": dataset_label(dataset),
        "clips": len(oof),
        "speakers": int(oof["speaker"].nunique()),
        "hours": prepared.get("hours", 0.0),
        "excluded_clips": int(prepared.get("excluded", 0)) + int(features.get("failed", 0)),
        "excluded": {**{step: int(n) for step, n in prepared.get("excluded_by_step", {}).items()},
                     "extract": int(features.get("failed", 0))},
        "classes": len(labels_of(oof)),
        "protocol": short_protocol(protocol),
        "extractor": settings.get("extractor", "unknown"),
        "model": short_model(settings),
        "classifier": classifier,
    }


def evaluate(oof: pd.DataFrame, cv_summary: dict, context: dict, seed: int = 0) -> tuple[dict, list[list[int]]]:
    """(metrics.json content, confusion matrix in ``labels_of(oof)`` order).

    Headline metrics are pooled over all out-of-fold predictions; ``ci95`` their bootstrap interval over
    speakers; ``cv`` their mean and (population) std over folds, which results/cv.json lists one by one;
    ``calibration`` what predict applies and ``novelty`` its open-set threshold, when cv.json has them.
    """
    labels = labels_of(oof)
    s = scores(oof["actual"], oof["predicted"], labels)
    ci = speaker_bootstrap(oof, labels, seed)
    cv = {}
    for m in HEADLINE:
        cv[f"{m}_mean"] = round(float(cv_summary["mean"][m]), DIGITS)
        cv[f"{m}_std"] = round(float(cv_summary["std"][m]), DIGITS)
    metrics = {
        **{m: round(s[m], DIGITS) for m in HEADLINE},
        "ci95": ({"none": ci["none"]} if ci["uar"] is None else
                 {f"{m}_{end}": round(ci[m][i], DIGITS) for m in ("uar", "accuracy") for i, end in
                  enumerate(("low", "high"))}) | {"resamples": ci["resamples"], "over": ci["over"]},
        "cv": cv,
        "per_class": {metric_key(c): {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in d.items()}
                      for c, d in s["per_class"].items()},
        "context": context,
    }
    if "corpus" in oof and oof["corpus"].nunique() > 1:  # pooled corpora: each corpus's own figures
        metrics["per_corpus"] = {metric_key(name): {**{m: round(v, DIGITS) for m, v in
                                                       scores(part["actual"], part["predicted"], labels).items()
                                                       if m in HEADLINE},
                                                    "clips": len(part), "speakers": int(part["speaker"].nunique())}
                                 for name, part in oof.groupby("corpus")}
    if "calibration" in cv_summary:
        metrics["calibration"] = calibration_metrics(cv_summary["calibration"])
    if "novelty" in cv_summary:
        n = cv_summary["novelty"]
        metrics["novelty"] = {"method": n["method"], "threshold": round(n["threshold"], DIGITS),
                              "threshold_rejects": "yes" if n["applies"] else
                              f"no: set on {n['threshold_from']}",
                              "false_rejection_target": n["false_rejection_target"],
                              **({"false_rejection_cross_fitted": round(n["false_rejection_cross_fitted"], DIGITS)}
                                 if n["false_rejection_cross_fitted"] is not None else {})}
    return metrics, s["confusion"]


def calibration_metrics(c: dict) -> dict:
    """Which calibration predict applies and why (scaling is kept only when its cross-fitted NLL is
    lower), from results/cv.json's ``calibration``."""
    return {"method": c["method"], **{k: round(c[k], DIGITS) for k in ("temperature", "ece_before", "ece_after")},
            "nll_uncalibrated": round(c["nll_before"], DIGITS),
            "nll_temperature_scaled": round(c["candidate"]["nll"], DIGITS)}


def metric_key(label: str) -> str:
    """A label as a metrics.json key: DVC splits keys at dots, so '3.5' is written '3_5'."""
    return str(label).replace(".", "_")


def left_out(excluded: pd.DataFrame, features: dict, cross: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every clip left out of the run and why, in one table: skipped by the corpus scan and excluded
    by prepare (data/excluded.csv), failed in extraction (embeddings/features.json), then the cross-corpus
    test clips crosstest could not predict (results/cross_corpus.csv, step ``crosstest <corpus>``)."""
    failed = pd.DataFrame(features.get("failed_clips", []), columns=["clip_id", "path", "reason"])
    columns = ["step", "clip_id", "path", "reason"]
    parts = [excluded.reindex(columns=columns), failed.assign(step="extract")[columns]]
    if cross is not None and "error" in cross:
        bad = cross[cross["error"].fillna("").astype(str) != ""]
        parts.append(pd.DataFrame({"step": "crosstest " + bad["corpus"].astype(str), "clip_id": bad["clip_id"],
                                   "path": "", "reason": bad["error"]})[columns])
    return pd.concat(parts, ignore_index=True)


def fold_table(cv_summary: dict) -> pd.DataFrame:
    """One row per CV fold with its headline metrics and the classes its test side lacked
    (from results/cv.json); under leave-one-corpus-out a fold is named by the corpus it held out."""
    table = pd.DataFrame(cv_summary["folds"])
    if "missing_classes" not in table:
        table["missing_classes"] = [[] for _ in range(len(table))]
    if "held_out" in table:
        table["fold"] = table["held_out"]
    return table[["fold", *HEADLINE, "missing_classes"]]


def read_learning_curves(path: str | Path) -> pd.DataFrame:
    """results/learning_curves.csv (fold, epoch, train_loss, val_loss, val_uar); empty when the
    file is missing or has no rows, i.e. the classifier trains without epochs."""
    columns = ["fold", "epoch", "train_loss", "val_loss", "val_uar"]
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    return pd.read_csv(path, dtype={"fold": str})
