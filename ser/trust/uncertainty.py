"""Uncertainty of one prediction from its class probabilities, and the risk-coverage curve."""

from __future__ import annotations

import numpy as np


def entropy(proba: np.ndarray) -> np.ndarray:
    """Normalised entropy of each row: 0 = one class certain, 1 = uniform over the classes."""
    p = np.clip(np.asarray(proba, np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(-1) / np.log(p.shape[-1])


def margin(proba: np.ndarray) -> np.ndarray:
    """Top probability minus the runner-up's: near 0 when two classes tie."""
    top = np.sort(np.asarray(proba, np.float64), axis=-1)
    return top[..., -1] - top[..., -2]


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, accuracy of the kept predictions) as predictions are kept from the most confident down:
    point i keeps the i + 1 most confident."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    kept = np.cumsum(np.asarray(correct, np.float64)[order])
    n = np.arange(1, len(order) + 1)
    return n / len(order), kept / n
