"""Leak-free cross-validation and the inner splits that live inside a training fold.

Folds are drawn over original clips only (speaker-grouped by default); augmented copies of a clip
go to the training side of the fold whose test side holds that clip's original, and are never
tested. The estimator (scaler included) is rebuilt and refit inside every fold.

Inside a training fold, whatever needs held-out data (the MLP's early stopping, the SVM's
probability calibration, the tuning objective) splits it again with :func:`grouped_folds` /
:func:`validation_split`: whole speakers go to one side, so augmented copies always travel with
their original, and only original clips are scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from .classifiers import final_step
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


def outer_folds(meta: pd.DataFrame, folds: int, group_by: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) of every outer fold, as :func:`cross_validate` uses them."""
    originals = meta[meta["aug"] == 0].drop_duplicates("clip_id")
    fold_of = assign_folds(originals["label"].to_numpy(), originals["speaker"].to_numpy(), folds, group_by, seed)
    clip_fold = pd.Series(fold_of, index=originals["clip_id"].to_numpy())
    return [fold_indices(meta, clip_fold, k) for k in range(folds)]


# --- splits inside a training fold ---------------------------------------------------------------

def split_units(n: int, groups: np.ndarray | None = None, clip_ids: np.ndarray | None = None) -> np.ndarray:
    """What an inner split must keep whole, per row: the speaker when known, else the clip (so an
    augmented copy stays with its original), else the row itself."""
    for units in (groups, clip_ids):
        if units is not None:
            units = np.asarray(units)
            if len(units) != n:
                raise ValueError(f"got {len(units)} group labels for {n} rows")
            return units
    return np.arange(n)


def grouped_folds(y: np.ndarray, units: np.ndarray, n_splits: int, seed: int,
                  scored: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that never cut a unit (speaker/clip): a list of (train rows, held-out rows).

    ``scored`` marks the rows that may be held out and scored (the original clips); the other rows
    of a held-out unit (its augmented copies) go to neither side. Without it the held-out sides
    partition all rows. ``n_splits`` is lowered to the number of units when there are fewer.
    """
    y, units = np.asarray(y), np.unique(np.asarray(units), return_inverse=True)[1]  # integer codes: fast isin
    scored = np.ones(len(y), bool) if scored is None else np.asarray(scored, bool)
    n_units = len(np.unique(units[scored]))
    if n_units < 2:
        raise ValueError(f"cannot hold out data: the training rows have {n_units} speaker/clip group(s)")
    n_splits = min(n_splits, n_units)
    rows = np.flatnonzero(scored)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    out = []
    for _, held in splitter.split(np.zeros(len(rows)), y[rows], groups=units[rows]):
        held_out = np.isin(units, units[rows[held]])
        out.append((np.flatnonzero(~held_out), np.flatnonzero(held_out & scored)))
    return out


def validation_split(y: np.ndarray, groups: np.ndarray | None = None, clip_ids: np.ndarray | None = None,
                     aug: np.ndarray | None = None, fraction: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) holding out about ``fraction`` of the speakers (or clips when no
    speakers are given). Validation rows are original clips only (``aug == 0``); augmented copies of
    a validation clip are on neither side."""
    units = split_units(len(y), groups, clip_ids)
    scored = None if aug is None else np.asarray(aug) == 0
    n_splits = max(2, round(1 / fraction))
    return grouped_folds(y, units, n_splits, seed, scored)[0]


# --- outer cross-validation ----------------------------------------------------------------------

FitFold = Callable[[np.ndarray, int], tuple[BaseEstimator, dict]]


@dataclass
class CVResult:
    """What :func:`cross_validate` returns."""

    oof: pd.DataFrame  # one row per original clip: fold, clip_id, speaker, actual, predicted, p_<label>
    folds: list[dict]  # per fold: rows, headline metrics and whatever fit_fold reported (e.g. best params)
    histories: dict[int, list[dict]] = field(default_factory=dict)  # fold -> per-epoch history, if kept


def cross_validate(X: np.ndarray, meta: pd.DataFrame, labels: list[str], fit_fold: FitFold,
                   folds: int, group_by: str, seed: int) -> CVResult:
    """Out-of-fold predictions (with class probabilities) and per-fold metrics.

    ``meta`` holds one row per row of X: clip_id, label, speaker, aug (0 = original clip).
    ``fit_fold(train_rows, k)`` returns the estimator fitted on those rows and a dict of facts about
    the fit for the fold record; labels are encoded as indices into ``labels``.
    """
    result = CVResult(pd.DataFrame(), [])
    parts = []
    for k, (train, test) in enumerate(outer_folds(meta, folds, group_by, seed)):
        log.info("fold %d/%d: fitting on %d rows (%d speakers), testing on %d clips (%d speakers)", k + 1, folds,
                 len(train), meta["speaker"].iloc[train].nunique(), len(test), meta["speaker"].iloc[test].nunique())
        model, facts = fit_fold(train, k)
        proba = predict_proba(model, X[test], len(labels))
        part = meta.iloc[test][["clip_id", "speaker", "label"]].rename(columns={"label": "actual"})
        part.insert(0, "fold", k)
        part["predicted"] = [labels[i] for i in proba.argmax(1)]
        for i, lab in enumerate(labels):
            part[f"p_{lab}"] = proba[:, i]
        s = scores(part["actual"], part["predicted"], labels)
        result.folds.append({"fold": k, "train_rows": len(train), "test_clips": len(test),
                             **{m: s[m] for m in HEADLINE}, **facts})
        history = getattr(final_step(model), "history_", None)
        if history is not None:
            result.histories[k] = history
        log.info("fold %d/%d: accuracy %.3f, UAR %.3f", k + 1, folds, s["accuracy"], s["uar"])
        parts.append(part)
    result.oof = pd.concat(parts, ignore_index=True)
    return result


def predict_proba(model: BaseEstimator, X: np.ndarray, n_labels: int) -> np.ndarray:
    """Class probabilities in label order, zero for a class the model never saw in training."""
    proba = np.zeros((len(X), n_labels))
    proba[:, np.asarray(model.classes_, int)] = model.predict_proba(X)
    return proba
