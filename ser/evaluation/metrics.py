"""One metric function, as in EmoBox: WA, UA(R), macro/weighted F1, per class, confusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

HEADLINE = ("accuracy", "uar", "macro_f1", "weighted_f1")
"""The metrics reported per fold, pooled over folds, and compared across runs."""


def scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Headline metrics plus per-class precision/recall/F1/support and the confusion matrix.

    accuracy is the weighted accuracy (WA); ``uar`` is the unweighted average recall (UA), the mean
    of per-class recalls over the classes present in ``y_true``, so a majority-class guesser scores
    1/classes however imbalanced the data. ``macro_f1`` averages over the same classes.
    ``confusion[i][j]`` counts clips of ``labels[i]`` predicted as ``labels[j]``.
    """
    labels = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": float(recall[present].mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.array(labels)[present], average="macro",
                                   zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for lab, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
