"""The layer weights a sequence classifier learned (``attentive``, ``cnn_bilstm`` over several layers)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ser.evaluation.plots import _save, fold_name, message_png


def learned_layer_weights(cv_summary: dict) -> dict[str, list[float]]:
    """{fold name: softmax layer weights} from results/cv.json (folds, then the final fit); empty when
    the classifier learned none."""
    fits = [(fold_name(f["fold"]), f) for f in cv_summary.get("folds", [])]
    fits.append(("final fit", cv_summary.get("final", {})))
    return {name: fit["layer_weights"] for name, fit in fits if fit.get("layer_weights")}


def layer_weights_png(cv_summary: dict, classifier: str, title: str, path: str | Path) -> None:
    """Bars: the mean weight of each encoder layer over the CV folds; dots: each fold; a black tick:
    the final fit. Layer 0 is the input to the first transformer layer."""
    weights = learned_layer_weights(cv_summary)
    if not weights:
        message_png(f"no learned layer weights: {classifier} does not weight encoder layers "
                    "(attentive and cnn_bilstm do, with features.layers: all)", path)
        return
    folds = np.array([w for name, w in weights.items() if name != "final fit"])
    layers = np.arange(len(next(iter(weights.values()))))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(layers) + 2), 3.6))
    if len(folds):
        ax.bar(layers, folds.mean(0), color="tab:blue", alpha=0.6, label=f"mean of {len(folds)} folds")
        for w in folds:
            ax.scatter(layers, w, color="tab:blue", s=10, zorder=3)
    if "final fit" in weights:
        ax.scatter(layers, weights["final fit"], marker="_", s=300, color="black", zorder=4, label="final fit")
    ax.axhline(1 / len(layers), color="0.5", linestyle=":", linewidth=1, label="uniform")
    ax.set_xticks(layers)
    ax.set_xlabel("layer (0 = input to the first transformer layer)")
    ax.set_ylabel("softmax weight")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{title}\nlearned layer weights ({classifier})", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
