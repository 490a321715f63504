"""How far the out-of-fold predictions can be trusted: accuracy as fewer predictions are kept (risk-coverage),
and where the novelty threshold sits among the unseen speakers' scores."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ser.evaluation.plots import _save
from ser.trust.uncertainty import risk_coverage


def risk_coverage_png(proba: np.ndarray, y: np.ndarray, novelty: np.ndarray, novelty_summary: dict, title: str,
                      path: str | Path) -> None:
    """Left: accuracy of the kept predictions against coverage, keeping the most confident first (top
    probability) or the least novel first; right: the out-of-fold novelty scores and the threshold."""
    correct = proba.argmax(1) == y
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    method = novelty_summary.get("method", "novelty")
    for name, confidence, colour in (("top probability", proba.max(1), "tab:blue"),
                                     (f"novelty score ({method}), lowest first", -novelty, "tab:orange")):
        coverage, accuracy = risk_coverage(confidence, correct)
        left.plot(coverage, accuracy, color=colour, label=f"kept by {name}: area {accuracy.mean():.3f}")
    threshold = novelty_summary["threshold"]
    kept = float((novelty <= threshold).mean())
    left.axvline(kept, color="0.4", linestyle=":", label=f"novelty threshold keeps {kept:.0%}")
    left.axhline(correct.mean(), color="0.6", linewidth=0.8, label=f"all predictions: accuracy {correct.mean():.3f}")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1.02)
    left.set_xlabel("coverage (share of predictions kept)")
    left.set_ylabel("accuracy of the kept predictions")
    left.grid(alpha=0.3)
    left.legend(loc="lower left", fontsize=8, frameon=False)
    right.hist(novelty, bins=40, color="tab:orange", alpha=0.7)
    measured = novelty_summary.get("false_rejection_cross_fitted")
    right.axvline(threshold, color="black", linestyle="--",
                  label=f"threshold {threshold:.3g}: rejects {novelty_summary['false_rejection_target']:.0%} "
                        f"(cross-fitted: {'n/a' if measured is None else f'{measured:.1%}'})")
    right.set_xlabel(f"novelty score ({method}) of unseen speakers' clips, out-of-fold")
    right.set_ylabel("clips")
    right.legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(f"{title}\nselective prediction and open-set rejection, out-of-fold", fontsize=9)
    _save(fig, path)
