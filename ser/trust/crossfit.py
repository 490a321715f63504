"""Fit the novelty score of a training run and choose its threshold, measured cross-fitted.

Each CV fold's score is fit on that fold's training clips (originals only) and scores its test clips:
out-of-fold novelty, i.e. how unseen speakers of the training corpus look. The threshold is the
``1 - false_rejection`` quantile of those scores. How often it wrongly rejects new speakers is measured
cross-fitted: each fold is judged against the threshold the other folds' scores give. The final score is
fit on all original clips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser.models.cv import Plan, outer_folds
from ser.trust.novelty import Novelty, vectors
from ser.trust.params import TrustParams, novelty_method

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    novelty: Novelty  # fit on all original clips: what predict applies
    threshold: float
    oof_scores: np.ndarray  # one per out-of-fold row, in models/oof.csv order
    summary: dict  # results/cv.json's ``novelty`` and the model card's


def fit_novelty(X, meta: pd.DataFrame, y: np.ndarray, oof_proba: np.ndarray, cv: Plan, seed: int,
                trust: TrustParams, reads_audio: bool = False) -> Fitted:
    """Cross-fitted out-of-fold scores, the threshold, its cross-fitted false-rejection rate and the
    final score. ``oof_proba`` are the calibrated out-of-fold probabilities in models/oof.csv order
    (the concatenated test rows of the tested folds, as :func:`ser.models.cv.cross_validate` writes them)."""
    method, k = novelty_method(trust, reads_audio), trust.knn_k
    original = meta["aug"].to_numpy() == 0
    originals = np.flatnonzero(original)
    # vectors of the original clips only (augmented copies are never fit or scored); row -> its vector
    V = vectors(X[originals]) if method != "msp" else None
    at = np.full(len(original), -1)
    at[originals] = np.arange(len(originals))

    def of(rows: np.ndarray) -> np.ndarray | None:
        return V[at[rows]] if V is not None else None

    scores, fold_of = [], []
    start = 0
    for fold, (train, test) in enumerate(outer_folds(meta, cv, seed)[:cv.tested]):
        rows = train[original[train]]
        scorer = Novelty.fit(method, of(rows), y[rows], k)
        proba = oof_proba[start:start + len(test)]
        scores.append(scorer.score(of(test), proba))
        fold_of.append(np.full(len(test), fold))
        start += len(test)
    if start != len(oof_proba):
        raise ValueError(f"{len(oof_proba)} out-of-fold rows, the folds test {start}")
    oof_scores, fold_of = np.concatenate(scores), np.concatenate(fold_of)
    quantile = 1.0 - trust.false_rejection
    threshold = float(np.quantile(oof_scores, quantile))
    per_fold = {}
    for fold in np.unique(fold_of):
        others = oof_scores[fold_of != fold]
        if len(others):
            per_fold[str(fold)] = float((oof_scores[fold_of == fold] > np.quantile(others, quantile)).mean())
    measured = (float(sum(per_fold[f] * (fold_of == int(f)).sum() for f in per_fold) / len(oof_scores))
                if len(per_fold) > 1 else None)
    final = Novelty.fit(method, V, y[originals], k)
    held_out = "corpora" if cv.group_by == "corpus" else "speakers" if cv.group_by == "speaker" else "clips"
    applies = trust.novelty_gate == "speakers" or (trust.novelty_gate == "corpora" and held_out == "corpora")
    summary = {
        "method": method, "threshold": threshold, "false_rejection_target": trust.false_rejection,
        "threshold_from": f"held-out {held_out}", "applies": applies,
        "gate": (f"input above the threshold is unknown (trust.novelty_gate: {trust.novelty_gate})" if applies else
                 f"the score is reported, never rejects: its threshold was set on held-out {held_out} of one recording "
                 "set-up and would reject other set-ups' speech (trust.novelty_gate: corpora needs cv.group_by: "
                 "corpus; speakers applies it anyway)"),
        "speech_threshold": trust.speech_threshold if trust.speech == "silero" else None,
        "false_rejection_cross_fitted": measured, "false_rejection_per_fold": per_fold, "knn_k": k,
        "fitted_on": int(len(originals)),
        "protocol": ("out-of-fold scores (each fold's score fit on its training clips); false rejection of each "
                     "fold judged by the threshold of the other folds" if measured is not None else
                     "one fold evaluated: the false-rejection rate cannot be cross-fitted"),
    }
    log.info("novelty (%s): threshold %.4g rejects %.1f%% of the clips of held-out %s cross-fitted (target %.0f%%)",
             method, threshold, 100 * (measured if measured is not None else float("nan")), held_out,
             100 * trust.false_rejection)
    return Fitted(final, threshold, oof_scores, summary)
