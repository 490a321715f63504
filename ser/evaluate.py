"""Turn out-of-fold predictions into metrics.json, dvc plot data and PNGs."""

from __future__ import annotations

import pandas as pd

from .metrics import HEADLINE, scores


def evaluate(oof: pd.DataFrame, cv_summary: dict, context: dict) -> dict:
    """Metrics over all out-of-fold predictions, the CV spread, and the run's context."""
    labels = sorted(c.removeprefix("p_") for c in oof.columns if c.startswith("p_"))
    s = scores(oof["actual"], oof["predicted"], labels)
    return {
        **{m: round(s[m], 4) for m in HEADLINE},
        "cv_mean": {m: round(cv_summary["mean"][m], 4) for m in HEADLINE},
        "cv_std": {m: round(cv_summary["std"][m], 4) for m in HEADLINE},
        "per_class": {c: {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
                      for c, d in s["per_class"].items()},
        "context": {**context, "protocol": cv_summary["protocol"], "labels": labels},
        "confusion": s["confusion"],
    }
