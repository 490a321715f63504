"""Leak-free cross-validation.

Folds are drawn over original clips only (speaker-grouped by default); augmented copies of a clip
go to the training side of the fold whose test side holds that clip's original, and are never
tested. The estimator (scaler included) is rebuilt and refit inside every fold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from .metrics import HEADLINE, scores

log = logging.getLogger(__name__)


def protocol(folds: int, group_by: str) -> str:
    """How a number was measured, printed next to it everywhere."""
    if group_by == "speaker":
        return f"{folds}-fold speaker-independent CV (StratifiedGroupKFold by speaker)"
    return f"{folds}-fold stratified CV, speakers shared across folds (not speaker-independent)"


def assign_folds(labels: np.ndarray, speakers: np.ndarray, folds: int, group_by: str, seed: int) -> np.ndarray:
    """Fold index of each original clip; with ``group_by='speaker'`` a speaker sits in one fold."""
    n_speakers = len(np.unique(speakers))
    if group_by == "speaker":
        if n_speakers < folds:
            raise ValueError(f"cv.folds={folds} needs at least {folds} speakers for speaker-independent "
                             f"folds, the data has {n_speakers}; lower cv.folds or set cv.group_by: none")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups=speakers)
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    fold = np.full(len(labels), -1)
    for k, (_, test) in enumerate(splits):
        fold[test] = k
    return fold


def fold_indices(meta: pd.DataFrame, clip_fold: pd.Series, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of fold k: test = originals of the fold, train = everything else,
    augmented copies included, except any copy of a test clip."""
    row_fold = meta["clip_id"].map(clip_fold).to_numpy()
    original = meta["aug"].to_numpy() == 0
    test = np.flatnonzero((row_fold == k) & original)
    train = np.flatnonzero(row_fold != k)
    return train, test


def cross_validate(X: np.ndarray, meta: pd.DataFrame, labels: list[str], make: Callable[[], BaseEstimator],
                   folds: int, group_by: str, seed: int) -> tuple[pd.DataFrame, list[dict]]:
    """Out-of-fold predictions (with class probabilities) and per-fold metrics.

    ``meta`` holds one row per row of X: clip_id, label, speaker, aug (0 = original clip).
    """
    originals = meta[meta["aug"] == 0].drop_duplicates("clip_id")
    fold_of = assign_folds(originals["label"].to_numpy(), originals["speaker"].to_numpy(), folds, group_by, seed)
    clip_fold = pd.Series(fold_of, index=originals["clip_id"].to_numpy())
    y = meta["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    parts, per_fold = [], []
    for k in range(folds):
        train, test = fold_indices(meta, clip_fold, k)
        model = make().fit(X[train], y[train])
        proba = np.zeros((len(test), len(labels)))
        proba[:, model.classes_] = model.predict_proba(X[test])
        part = meta.iloc[test][["clip_id", "speaker", "label"]].rename(columns={"label": "actual"})
        part.insert(0, "fold", k)
        part["predicted"] = [labels[i] for i in proba.argmax(1)]
        for i, lab in enumerate(labels):
            part[f"p_{lab}"] = proba[:, i]
        s = scores(part["actual"], part["predicted"], labels)
        per_fold.append({"fold": k, "train_rows": len(train), "test_clips": len(test),
                         **{m: s[m] for m in HEADLINE}})
        log.info("fold %d/%d: %d train rows, %d test clips, accuracy %.3f, UAR %.3f", k + 1, folds,
                 len(train), len(test), s["accuracy"], s["uar"])
        parts.append(part)
    return pd.concat(parts, ignore_index=True), per_fold
