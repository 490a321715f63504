"""Temperature scaling of class probabilities, fit on out-of-fold predictions, kept only where it helps.

The log of each OOF probability vector is treated as logits; one temperature T > 0 divides them
(T > 1 softens an over-confident model, T < 1 sharpens an under-confident one). T is fit by
minimising the negative log-likelihood with bounded scalar minimisation. The ECE reported *after*
calibration is cross-fitted over the OOF folds (T fit on the other folds, scored on the held-out
one), so the same rows are never used to fit and to score.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

EPS = 1e-12
T_BOUNDS = (0.05, 20.0)


def _logits(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0))


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax (numpy only: predict imports this module, not scipy.optimize)."""
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(proba) / T), row-wise; T = 1 returns the (renormalised) input."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return np.exp(log_softmax(_logits(proba) / temperature, axis=-1))


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes ``y`` (integer indices)."""
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y)]
    return float(-np.log(np.clip(p, EPS, 1.0)).mean())


def ece(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top class: equal-width confidence bins, weighted by size."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        return float("nan")
    confidence = proba.max(1)
    correct = (proba.argmax(1) == y).astype(np.float64)
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(y))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The T in ``T_BOUNDS`` minimising the NLL of ``apply_temperature(proba, T)`` (searched on log T)."""
    from scipy.optimize import minimize_scalar

    logits = _logits(proba)
    y = np.asarray(y)
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=-1)[rows, y].mean())

    result = minimize_scalar(loss, bounds=np.log(T_BOUNDS), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def oof_arrays(oof: pd.DataFrame, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities in ``labels`` order, integer true classes) from an oof.csv frame."""
    missing = [f"p_{lab}" for lab in labels if f"p_{lab}" not in oof.columns]
    if missing:
        raise ValueError(f"OOF predictions lack the probability columns {missing}")
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(oof["actual"].astype(str)) - set(index))
    if unknown:
        raise ValueError(f"OOF labels {unknown} are not among the model's labels {labels}")
    proba = oof[[f"p_{lab}" for lab in labels]].to_numpy(np.float64)
    return proba, oof["actual"].astype(str).map(index).to_numpy()


def calibrate_oof(oof: pd.DataFrame, labels: list[str], bins: int = 15) -> dict:
    """Choose the calibration predict applies, from the OOF predictions (the model card's ``calibration``).

    Temperature scaling is a candidate, never imposed: T is fit on all OOF rows and judged
    cross-fitted over the ``fold`` column (each fold scaled with a T fit on the other folds). It is
    kept only when that lowers the NLL of the uncalibrated OOF predictions; else ``method`` is
    ``none`` and ``temperature`` 1. ``ece_after``/``nll_after`` measure what predict applies (so they
    equal the "before" figures when nothing is applied); ``candidate`` keeps the rejected figures.
    With a single fold the candidate can only be judged in-sample, and ``protocol`` says so.
    """
    proba, y = oof_arrays(oof, labels)
    fitted = fit_temperature(proba, y)
    folds = oof["fold"].to_numpy() if "fold" in oof.columns else np.zeros(len(y), dtype=int)
    scaled = np.empty_like(proba)
    fold_t = {}
    if len(np.unique(folds)) > 1:
        for k in np.unique(folds):
            held = folds == k
            fold_t[str(k)] = fit_temperature(proba[~held], y[~held])
            scaled[held] = apply_temperature(proba[held], fold_t[str(k)])
        protocol = f"cross-fitted over {len(fold_t)} OOF folds (T fit on the other folds)"
    else:
        scaled = apply_temperature(proba, fitted)
        protocol = "in-sample (one fold only: T fit and scored on the same rows)"
    before = {"ece": ece(proba, y, bins), "nll": nll(proba, y)}
    candidate = {"temperature": fitted, "ece": ece(scaled, y, bins), "nll": nll(scaled, y)}
    keep = candidate["nll"] < before["nll"]
    after = candidate if keep else before
    judged = protocol.split(" (")[0]
    change = f"out-of-fold NLL {before['nll']:.4f} -> {candidate['nll']:.4f}, {judged}"
    reason = (f"temperature {fitted:.3f} lowers the {change}" if keep else
              f"temperature {fitted:.3f} would not lower the {change}: the classifier's probabilities are used")
    result = {
        "method": "temperature" if keep else "none",
        "temperature": fitted if keep else 1.0,
        "reason": reason,
        "n": int(len(y)),
        "bins": bins,
        "ece_before": before["ece"],
        "ece_after": after["ece"],
        "nll_before": before["nll"],
        "nll_after": after["nll"],
        "candidate": candidate,
        "accuracy": float((proba.argmax(1) == y).mean()),
        "protocol": protocol,
        "fold_temperatures": fold_t,
    }
    log.info("calibration: %s; ECE %.4f -> %.4f (%s)", reason, result["ece_before"], result["ece_after"], protocol)
    return result


def calibrated_oof(oof: pd.DataFrame, labels: list[str], calibration: dict) -> np.ndarray:
    """The OOF probabilities as predict would calibrate them, cross-fitted: each fold scaled with the
    temperature fit without it (unchanged when ``calibration['method']`` is ``none``)."""
    proba, _ = oof_arrays(oof, labels)
    if calibration.get("method", "temperature") == "none":
        return proba
    folds = oof["fold"].astype(str).to_numpy()
    per_fold = calibration.get("fold_temperatures") or {}
    out = np.empty_like(proba)
    for k in np.unique(folds):
        held = folds == k
        out[held] = apply_temperature(proba[held], per_fold.get(k, calibration["temperature"]))
    return out
