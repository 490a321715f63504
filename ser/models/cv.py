"""Leak-free cross-validation.

Folds are drawn over original clips only (speaker-grouped by default); augmented copies of a clip
go to the training side of the fold whose test side holds that clip's original, and are never
tested. The estimator (scaler included) is rebuilt and refit inside every fold. With fewer
speakers than ``cv.folds`` the folds become leave-one-speaker-out (:func:`plan`), and the
protocol string says so wherever a number is printed.

The splits inside a training fold are in :mod:`ser.models.inner_splits`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ser.corpora.emotions import speakers_phrase
from ser.evaluation.metrics import HEADLINE, scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """The outer CV protocol a run uses: ``folds`` folds, grouped by speaker or not."""

    folds: int
    group_by: str  # speaker | none
    requested: int  # cv.folds as set in params.yaml
    evaluated: int | None = None  # cv.max_folds: only the first ones are fitted and tested
    tta: bool = False  # cv.tta: a test clip's probabilities are averaged with its augmented copies'

    @property
    def tested(self) -> int:
        """How many folds are fitted and tested."""
        return min(self.folds, self.evaluated or self.folds)

    @property
    def leave_one_speaker_out(self) -> bool:
        return self.group_by == "speaker" and self.folds < self.requested

    @property
    def column(self) -> str | None:
        """The meta column a fold keeps whole (speaker, corpus), None for plain stratified folds."""
        return None if self.group_by == "none" else self.group_by

    @property
    def protocol(self) -> str:
        """How a number was measured, printed next to it everywhere."""
        if self.group_by == "corpus":
            text = f"leave-one-corpus-out CV ({self.folds} folds: each tests one corpus the model never heard)"
        elif self.leave_one_speaker_out:
            text = (f"leave-one-speaker-out CV ({self.folds} folds: {self.folds} speakers, fewer than "
                    f"cv.folds={self.requested})")
        elif self.group_by == "speaker":
            text = f"{self.folds}-fold speaker-independent CV (StratifiedGroupKFold by speaker)"
        else:
            text = f"{self.folds}-fold stratified CV, speakers shared across folds (not speaker-independent)"
        if self.tested < self.folds:
            text += (f", only the first {self.tested} of its {self.folds} folds evaluated (cv.max_folds): "
                     f"about {self.tested / self.folds:.0%} of the clips tested")
        if self.tta:
            text += ", test-time augmentation: each test clip averaged with its augmented copies (cv.tta)"
        return text


def plan(groups: np.ndarray, folds: int, group_by: str, max_folds: int | None = None, tta: bool = False) -> Plan:
    """The protocol for these clips' speakers (or, ``group_by='corpus'``, corpora): ``folds`` folds, or one per
    speaker when there are fewer speakers than folds (leave-one-speaker-out, the honest default for TESS or
    SAVEE), or one per corpus; with ``max_folds`` only that many are evaluated (fine-tuning every fold can cost
    hours each)."""
    if group_by == "corpus":
        n_corpora = len(np.unique(groups))
        if n_corpora < 2:
            raise ValueError(f"leave-one-corpus-out CV needs two or more corpora, the data has {n_corpora}")
        return Plan(n_corpora, group_by, folds, max_folds, tta)
    if group_by != "speaker":
        return Plan(folds, group_by, folds, max_folds, tta)
    speakers = groups
    n_speakers = len(np.unique(speakers))
    if n_speakers < 2:
        raise ValueError(f"speaker-independent CV needs two or more speakers, the data has {n_speakers}; "
                         "set cv.group_by: none (speakers shared across folds, not speaker-independent)")
    return Plan(min(folds, n_speakers), group_by, folds, max_folds, tta)


def assign_folds(labels: np.ndarray, groups: np.ndarray, cv: Plan, seed: int) -> np.ndarray:
    """Fold index of each original clip; with ``group_by='speaker'`` a speaker sits in one fold, with
    ``'corpus'`` fold k holds the k-th corpus (in sorted order) and nothing else."""
    if cv.group_by == "corpus":
        return np.unique(groups, return_inverse=True)[1]
    if cv.group_by == "speaker":
        splitter = StratifiedGroupKFold(n_splits=cv.folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups=groups)
    else:
        splitter = StratifiedKFold(n_splits=cv.folds, shuffle=True, random_state=seed)
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


def outer_folds(meta: pd.DataFrame, cv: Plan, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) of every outer fold, as :func:`cross_validate` uses them."""
    originals = meta[meta["aug"] == 0].drop_duplicates("clip_id")
    fold_of = assign_folds(originals["label"].to_numpy(), originals[cv.column or "speaker"].to_numpy(), cv, seed)
    clip_fold = pd.Series(fold_of, index=originals["clip_id"].to_numpy())
    return [fold_indices(meta, clip_fold, k) for k in range(cv.folds)]


# --- outer cross-validation ----------------------------------------------------------------------

FitFold = Callable[[np.ndarray, int], tuple[BaseEstimator, dict]]


@dataclass
class CVResult:
    """What :func:`cross_validate` returns."""

    oof: pd.DataFrame  # one row per original clip: fold, clip_id, speaker, actual, predicted, p_<label>
    folds: list[dict]  # per fold: rows, headline metrics and whatever fit_fold reported (e.g. best params)
    histories: dict[int, list[dict]] = field(default_factory=dict)  # fold -> per-epoch history, if kept


def cross_validate(X: np.ndarray, meta: pd.DataFrame, labels: list[str], fit_fold: FitFold,
                   cv: Plan, seed: int) -> CVResult:
    """Out-of-fold predictions (with class probabilities) and per-fold metrics.

    ``meta`` holds one row per row of X: clip_id, label, speaker, aug (0 = original clip).
    ``fit_fold(train_rows, k)`` returns the estimator fitted on those rows and a dict of facts about
    the fit for the fold record; labels are encoded as indices into ``labels``. What the fitted
    classifier says of its own inner splits (``fit_facts_``, e.g. the MLP's early stopping) joins it.
    """
    result = CVResult(pd.DataFrame(), [])
    parts = []
    folds = cv.tested
    for k, (train, test) in enumerate(outer_folds(meta, cv, seed)[:folds]):
        log.info("fold %d/%d: fitting on %d rows (%s), testing on %d clips (%s)", k + 1, folds, len(train),
                 speakers_phrase(meta["speaker"].iloc[train]), len(test), speakers_phrase(meta["speaker"].iloc[test]))
        model, facts = fit_fold(train, k)
        proba = predict_proba(model, X[test], len(labels))
        if cv.tta:
            proba = with_copies(proba, model, X, meta, test, len(labels))
        kept = ["clip_id", "speaker", *(["corpus"] if "corpus" in meta else []), "label"]
        part = meta.iloc[test][kept].rename(columns={"label": "actual"})
        part.insert(0, "fold", k)
        part["predicted"] = [labels[i] for i in proba.argmax(1)]
        for i, lab in enumerate(labels):
            part[f"p_{lab}"] = proba[:, i]
        s = scores(part["actual"], part["predicted"], labels)
        held = sorted(set(part["actual"]))
        missing = [lab for lab in labels if lab not in held]
        if missing:
            log.warning("fold %d/%d tests no clip of %s: its UAR averages %d of %d classes", k + 1, folds,
                        missing, len(held), len(labels))
        held_out = {"held_out": ", ".join(sorted(set(part["corpus"])))} if cv.group_by == "corpus" else {}
        result.folds.append({"fold": k, **held_out, "train_rows": len(train), "test_clips": len(test),
                             "test_classes": held,
                             "missing_classes": missing, **{m: s[m] for m in HEADLINE}, **fit_facts(model), **facts})
        history = getattr(final_step(model), "history_", None)
        if history is not None:
            result.histories[k] = history
        log.info("fold %d/%d: accuracy %.3f, UAR %.3f", k + 1, folds, s["accuracy"], s["uar"])
        parts.append(part)
    result.oof = pd.concat(parts, ignore_index=True)
    return result


def with_copies(proba: np.ndarray, model: BaseEstimator, X, meta: pd.DataFrame, test: np.ndarray,
                n_labels: int) -> np.ndarray:
    """Test-time augmentation: each test clip's probabilities averaged over it and its augmented copies."""
    ids = meta["clip_id"].to_numpy()
    copies = np.flatnonzero(np.isin(ids, ids[test]) & (meta["aug"].to_numpy() > 0))
    owner = pd.Index(ids[test]).get_indexer(ids[copies])
    total, count = proba.copy(), np.ones(len(test))
    np.add.at(total, owner, predict_proba(model, X[copies], n_labels))
    np.add.at(count, owner, 1)
    return total / count[:, None]


def final_step(model: BaseEstimator) -> BaseEstimator:
    """The classifier at the end of a Pipeline (or the estimator itself)."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def fit_facts(model: BaseEstimator) -> dict:
    """What a fitted classifier reports about its inner splits (``fit_facts_``), or nothing."""
    return dict(getattr(final_step(model), "fit_facts_", {}))


def predict_proba(model: BaseEstimator, X: np.ndarray, n_labels: int) -> np.ndarray:
    """Class probabilities in label order, zero for a class the model never saw in training."""
    proba = np.zeros((len(X), n_labels))
    proba[:, np.asarray(model.classes_, int)] = model.predict_proba(X)
    return proba
