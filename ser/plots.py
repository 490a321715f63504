"""PNG figures a person would rather look at than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .io import atomic_path


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def confusion_png(confusion: list[list[int]], labels: list[str], title: str, path: str | Path) -> None:
    """Heatmap of row-normalised rates, each cell annotated with its rate and count."""
    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = 1.0 + 0.75 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="recall (row-normalised)")
    _save(fig, path)


def per_class_png(per_class: dict, title: str, path: str | Path) -> None:
    """Grouped bars of precision, recall and F1 for each class."""
    labels = list(per_class)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(labels), 4))
    for k, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, [per_class[c][metric] for c in labels], 0.27, label=metric)
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def scatter_png(xy: np.ndarray, panels: dict[str, np.ndarray], title: str, path: str | Path) -> None:
    """One 2-D scatter panel per colouring (e.g. emotion, speaker), categorical legends."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False)
    size = max(1.0, 30_000 / max(len(xy), 1) ** 1.2)
    for ax, (name, values) in zip(axes[0], panels.items()):
        cats = sorted(set(values))
        cmap = plt.get_cmap("tab10" if len(cats) <= 10 else "tab20" if len(cats) <= 20 else "gist_ncar")
        for i, cat in enumerate(cats):
            mask = values == cat
            ax.scatter(xy[mask, 0], xy[mask, 1], s=min(size, 12), alpha=0.7, linewidths=0,
                       color=cmap(i / max(len(cats) - 1, 1) if len(cats) > 20 else i), label=str(cat))
        ax.set_title(f"coloured by {name}")
        ax.set_xticks([])
        ax.set_yticks([])
        if len(cats) <= 30:
            ax.legend(fontsize=7, markerscale=2, loc="best", ncol=1 + len(cats) // 16)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
