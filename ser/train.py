"""Cross-validate the configured classifier, then fit it on all data and save what predict needs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from . import classifiers
from .config import Params
from .cv import cross_validate, protocol
from .io import write_json
from .metrics import HEADLINE

log = logging.getLogger(__name__)


def summarize_folds(per_fold: list[dict], params: Params) -> dict:
    """results/cv.json: per-fold metrics and their mean and std."""
    table = pd.DataFrame(per_fold)
    return {
        "protocol": protocol(params.cv.folds, params.cv.group_by),
        "classifier": params.classifier,
        "folds": per_fold,
        "mean": {m: float(table[m].mean()) for m in HEADLINE},
        "std": {m: float(table[m].std(ddof=0)) for m in HEADLINE},
    }


def train(X: np.ndarray, meta: pd.DataFrame, params: Params, feature_settings: dict,
          model_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Run CV (returns out-of-fold predictions and the fold summary) and save the final model."""
    module = classifiers.get(params.classifier)
    labels = sorted(meta["label"].unique())
    log.info("%s on %d rows (%d original clips), %d classes; %s", params.classifier, len(X),
             int((meta["aug"] == 0).sum()), len(labels), protocol(params.cv.folds, params.cv.group_by))
    oof, per_fold = cross_validate(X, meta, labels, lambda: module.build(params, params.seed),
                                   params.cv.folds, params.cv.group_by, params.seed)
    summary = summarize_folds(per_fold, params)
    log.info("CV mean accuracy %.3f, UAR %.3f", summary["mean"]["accuracy"], summary["mean"]["uar"])
    log.info("fitting the final model on all %d rows", len(X))
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    model = module.build(params, params.seed).fit(X, y)
    model_dir.mkdir(parents=True, exist_ok=True)
    module.save(model, model_dir)
    write_json(model_dir / "model.json", {
        "classifier": params.classifier,
        "labels": labels,
        "features": feature_settings,
        "dim": int(X.shape[1]),
        "trained_on": {"dataset": params.dataset, "rows": len(X), "protocol": summary["protocol"]},
    })
    return oof, summary
