"""A fitted StandardScaler as plain JSON (exact: float64 values round-trip through repr)."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler


def to_dict(scaler: StandardScaler) -> dict:
    return {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(), "var": scaler.var_.tolist(),
            "n_samples_seen": int(np.max(scaler.n_samples_seen_))}


def from_dict(state: dict) -> StandardScaler:
    scaler = StandardScaler()
    scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
    scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
    scaler.var_ = np.asarray(state["var"], dtype=np.float64)
    scaler.n_samples_seen_ = state["n_samples_seen"]
    scaler.n_features_in_ = len(scaler.mean_)
    return scaler
