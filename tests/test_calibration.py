"""Temperature scaling and ECE (ser.models.calibration)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from ser.models.calibration import apply_temperature, calibrate_oof, ece, fit_temperature, nll

LABELS = ["angry", "happy", "neutral", "sad"]


def honest_model(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and classes drawn from them (so the probabilities are exactly right)."""
    rng = np.random.default_rng(seed)
    proba = softmax(rng.normal(0, 1.2, (n, len(LABELS))), axis=1)
    y = np.array([rng.choice(len(LABELS), p=p) for p in proba])
    return proba, y


def sharpen(proba: np.ndarray, power: float) -> np.ndarray:
    p = proba ** power
    return p / p.sum(1, keepdims=True)


def oof_frame(proba: np.ndarray, y: np.ndarray, folds: int) -> pd.DataFrame:
    frame = pd.DataFrame({"fold": np.arange(len(y)) % folds, "clip_id": [f"c{i}" for i in range(len(y))],
                          "speaker": "s", "actual": np.array(LABELS)[y],
                          "predicted": np.array(LABELS)[proba.argmax(1)]})
    for i, lab in enumerate(LABELS):
        frame[f"p_{lab}"] = proba[:, i]
    return frame


def test_ece_known_values():
    y = np.array([0, 1, 2, 3])
    assert ece(np.eye(4), y) == 0.0  # certain and always right
    assert ece(np.eye(4)[[1, 1, 2, 3]], y) == pytest.approx(0.25)  # certain, wrong once in 4
    half = np.tile([0.5, 0.5, 0, 0], (1000, 1))
    assert ece(half, np.arange(1000) % 2) == pytest.approx(0.0)  # 50 % sure, 50 % right
    assert ece(np.tile([0.9, 0.1, 0, 0], (10, 1)), np.zeros(10, int)) == pytest.approx(0.1)  # under-confident


def test_apply_temperature():
    proba, _ = honest_model(200)
    assert np.allclose(apply_temperature(proba, 1.0), proba)
    soft = apply_temperature(proba, 3.0)
    assert np.allclose(soft.sum(1), 1) and (soft.argmax(1) == proba.argmax(1)).all()
    assert (soft.max(1) <= proba.max(1) + 1e-12).all()
    assert np.allclose(apply_temperature(proba, 1e6), 0.25, atol=1e-4)
    over = sharpen(proba, 4)
    assert over.min() > 1e-12  # above the floor that keeps log() finite
    assert np.allclose(apply_temperature(over, 4.0), proba)  # p**4 renormalised, undone by T=4
    with pytest.raises(ValueError):
        apply_temperature(proba, 0.0)


def test_fit_temperature_recovers_the_distortion():
    proba, y = honest_model(6000)
    assert fit_temperature(proba, y) == pytest.approx(1.0, rel=0.1)
    assert fit_temperature(sharpen(proba, 4), y) == pytest.approx(4.0, rel=0.1)  # over-confident
    assert fit_temperature(sharpen(proba, 0.5), y) == pytest.approx(0.5, rel=0.1)  # under-confident


def test_calibrate_oof_lowers_ece_of_an_overconfident_model():
    proba, y = honest_model(3000, seed=1)
    over = sharpen(proba, 4)
    result = calibrate_oof(oof_frame(over, y, folds=5), LABELS)
    assert result["method"] == "temperature" and result["temperature"] > 2.5
    assert result["ece_before"] > 0.1
    assert result["ece_after"] < result["ece_before"] / 3
    assert result["nll_after"] < result["nll_before"]
    assert result["n"] == 3000 and result["accuracy"] == pytest.approx((over.argmax(1) == y).mean())
    # cross-fitted: one temperature per held-out fold, each fit without that fold
    assert len(result["fold_temperatures"]) == 5 and "cross-fitted" in result["protocol"]
    for k, t in result["fold_temperatures"].items():
        rows = np.arange(len(y)) % 5 != int(k)
        assert t == pytest.approx(fit_temperature(over[rows], y[rows]))
    json.dumps(result)  # goes to the model card and results/cv.json as is


def test_calibrate_oof_scores_honestly():
    """Cross-fitted ECE after calibration equals scoring each fold with a T fit elsewhere, and is no
    better than the in-sample figure it replaces."""
    proba, y = honest_model(600, seed=2)
    over = sharpen(proba, 3)
    frame = oof_frame(over, y, folds=4)
    result = calibrate_oof(frame, LABELS)
    after = np.empty_like(over)
    for k in range(4):
        held = frame["fold"].to_numpy() == k
        after[held] = apply_temperature(over[held], fit_temperature(over[~held], y[~held]))
    assert result["ece_after"] == pytest.approx(ece(after, y))
    assert result["nll_after"] == pytest.approx(nll(after, y)) and result["method"] == "temperature"
    assert result["nll_after"] >= nll(apply_temperature(over, result["temperature"]), y) - 1e-9


def test_calibrate_oof_single_fold_says_in_sample():
    proba, y = honest_model(300)
    result = calibrate_oof(oof_frame(sharpen(proba, 2), y, folds=1), LABELS)
    assert "in-sample" in result["protocol"] and result["fold_temperatures"] == {}


def test_calibrate_oof_rejects_mismatched_labels():
    proba, y = honest_model(50)
    with pytest.raises(ValueError, match="p_calm"):
        calibrate_oof(oof_frame(proba, y, 2), [*LABELS, "calm"])
    with pytest.raises(ValueError, match="not among"):
        calibrate_oof(oof_frame(proba, y, 2), LABELS[:3])


def test_calibration_that_would_make_things_worse_is_not_applied():
    """Fold models of opposite confidence (as on a 4-speaker corpus): a T fit on the others hurts each."""
    proba, y = honest_model(2000, seed=3)
    folds = np.arange(len(y)) % 2
    distorted = np.where((folds == 0)[:, None], sharpen(proba, 3), sharpen(proba, 1 / 3))
    frame = oof_frame(distorted, y, folds=2)
    result = calibrate_oof(frame, LABELS)
    assert result["candidate"]["nll"] > result["nll_before"]  # the cross-fitted candidate is worse...
    assert result["method"] == "none" and result["temperature"] == 1.0  # ... so it is not applied
    assert (result["ece_after"], result["nll_after"]) == (result["ece_before"], result["nll_before"])
    assert "would not lower" in result["reason"]


def test_reliability_bins_are_what_the_ece_averages():
    from ser.evaluation.plots import reliability_bins

    proba, y = honest_model(1500, seed=4)
    over = sharpen(proba, 3)
    table = reliability_bins(over, y)
    assert table["count"].sum() == len(y)
    weighted = (table["count"] * (table["accuracy"] - table["confidence"]).abs()).sum() / len(y)
    assert weighted == pytest.approx(ece(over, y))
