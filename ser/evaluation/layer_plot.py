"""Which encoder layers a run used: the layer weights a sequence classifier learned (``attentive``,
``cnn_bilstm`` over several layers), or the layers chosen inside each training fold for a classifier on
pooled vectors (:mod:`ser.models.layer_choice`: the inner UAR of every candidate layer, the chosen ones marked)."""

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


def chosen_layers(cv_summary: dict) -> dict[str, tuple[dict[int, float], list[int]]]:
    """{fold name: ({layer: inner UAR}, chosen layers)} from results/cv.json (folds, then the final fit);
    empty when no layers were chosen."""
    fits = [(fold_name(f["fold"]), f) for f in cv_summary.get("folds", [])]
    fits.append(("final fit", cv_summary.get("final", {})))
    return {name: ({int(k): v for k, v in fit.get("layer_inner_uar", {}).items()}, fit["layers_chosen"])
            for name, fit in fits if fit.get("layers_chosen")}


def layer_choice_png(choices: dict, classifier: str, title: str, path: str | Path) -> None:
    """Per fit (CV folds, final): the inner-CV UAR of each candidate layer, the chosen layers filled."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    layers = sorted({layer for uar, chosen in choices.values() for layer in [*uar, *chosen]})
    for i, (name, (uar, chosen)) in enumerate(choices.items()):
        color = "black" if name == "final fit" else plt.cm.tab10(i % 10)
        if uar:
            xs = sorted(uar)
            ax.plot(xs, [uar[x] for x in xs], color=color, linewidth=1, alpha=0.8, label=name)
            ax.scatter(chosen, [uar[x] for x in chosen], color=color, s=30, zorder=3)
        else:
            ax.scatter(chosen, [0.0] * len(chosen), color=color, marker="|", s=200, label=f"{name} (no inner CV)")
    ax.set_xticks(layers)
    ax.set_xlabel("layer (0 = input to the first transformer layer)")
    ax.set_ylabel("inner-CV UAR (training rows only)")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_title(f"{title}\nlayers chosen in each fold (filled: the ones {classifier} reads)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def layer_weights_png(cv_summary: dict, classifier: str, title: str, path: str | Path) -> None:
    """Bars: the mean weight of each encoder layer over the CV folds; dots: each fold; a black tick:
    the final fit. Layer 0 is the input to the first transformer layer. For a classifier on pooled vectors
    whose layers were chosen in each fold, :func:`layer_choice_png` instead."""
    weights = learned_layer_weights(cv_summary)
    if not weights and chosen_layers(cv_summary):
        layer_choice_png(chosen_layers(cv_summary), classifier, title, path)
        return
    if not weights:
        message_png(f"no encoder layers to show: {classifier} reads one feature vector (with features.layers: all, "
                    "the layers are chosen in each fold; attentive and cnn_bilstm learn layer weights)", path)
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
