"""PNG figures a person would rather look at than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ser.artifacts import atomic_path

LEGEND_MAX = 12
"""Categorical panels with more values than this (speakers) get distinct colours but no legend."""


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def message_png(text: str, path: str | Path) -> None:
    """A small figure that only says ``text``: for a plot that has nothing to show, so the DVC
    output still exists and says why."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    ax.set_axis_off()
    _save(fig, path)


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
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [f"{lab} ({n})" for lab, n in zip(labels, counts.sum(1))])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual (clips)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="recall (row-normalised)")
    _save(fig, path)


def per_class_png(per_class: dict, title: str, path: str | Path) -> None:
    """Grouped bars of precision, recall and F1 for each class, support under the class name, and the
    chance line 1/classes (a uniform guess's recall)."""
    labels = list(per_class)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(labels), 4))
    for k, (metric, name) in enumerate((("precision", "precision"), ("recall", "recall"), ("f1", "F1"))):
        ax.bar(x + (k - 1) * 0.27, [per_class[c][metric] for c in labels], 0.27, label=name)
    chance = 1 / len(labels)
    ax.axhline(chance, color="0.3", linestyle=":", linewidth=1.2, zorder=3,
               label=f"chance 1/{len(labels)} = {chance:.3f}")
    ax.set_xticks(x, [f"{c}\nn={per_class[c]['support']}" for c in labels])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def fold_spread_png(folds: pd.DataFrame, pooled: dict, title: str, path: str | Path,
                    chance: float | None = None) -> None:
    """Each headline metric across CV folds: a box, one dot per fold (same colour for the same fold
    in every column), the pooled out-of-fold value as a black diamond, mean +- std under the name."""
    metrics = [m for m in ("accuracy", "uar", "macro_f1", "weighted_f1") if m in folds]
    names = {"accuracy": "accuracy (WA)", "uar": "UAR", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}
    values = folds[metrics].to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(metrics), 4.2))
    ax.boxplot(values, positions=range(len(metrics)), widths=0.5, showfliers=False, whis=(0, 100),
               medianprops={"color": "0.3"}, boxprops={"color": "0.6"}, whiskerprops={"color": "0.6"},
               capprops={"color": "0.6"})
    cmap = plt.get_cmap("tab10")
    offsets = np.linspace(-0.16, 0.16, len(folds)) if len(folds) > 1 else np.zeros(1)
    missing = folds["missing_classes"] if "missing_classes" in folds else pd.Series([[]] * len(folds))
    for i, (fold, absent) in enumerate(zip(folds["fold"], missing)):
        flagged = isinstance(absent, list) and len(absent) > 0  # its UAR averages fewer classes
        ax.scatter(np.arange(len(metrics)) + offsets[i], values[i], s=28, color=cmap(i % 10), zorder=3,
                   edgecolors="red" if flagged else "white", linewidths=1.5 if flagged else 0.5,
                   label=fold_name(fold) + (f" (tests no {', '.join(map(str, absent))})" if flagged else ""))
    ax.scatter(range(len(metrics)), [pooled[m] for m in metrics], marker="D", s=40, color="black", zorder=4,
               label="pooled over all out-of-fold predictions")
    ax.set_xticks(range(len(metrics)), [f"{names[m]}\n{values[:, j].mean():.3f} ± {values[:, j].std():.3f}"
                                        for j, m in enumerate(metrics)])
    low = max(0.0, min(values.min(), *(pooled[m] for m in metrics)) - 0.05)
    ax.set_ylim(low, min(1.0, max(values.max(), *(pooled[m] for m in metrics)) + 0.05) + 0.01)
    if chance is not None:  # drawn only when it falls inside the zoomed range, always named
        where = "" if chance >= low else ", below the axis"
        ax.axhline(chance, color="0.5", linestyle=":", linewidth=1, label=f"chance UAR {chance:.3f}{where}")
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title(f"{title}\nspread across {len(folds)} folds (fold mean ± std under each metric)", fontsize=9)
    _save(fig, path)


def fold_name(fold: int | str) -> str:
    """Legend name of a CV fold, numbered 1..K as the log says "fold 1/5" (records count from 0); a fold named by
    the corpus it held out (leave-one-corpus-out) keeps that name."""
    if str(fold) == "final":
        return "final fit"
    return f"fold {int(fold) + 1}" if str(fold).isdigit() else f"held out: {fold}"


def best_epoch(curve: pd.DataFrame) -> int:
    """The epoch whose weights an MLP fit kept, by the rule of ``ser.models.classifiers.mlp``: the highest
    validation UAR, ties to the lower validation loss, then to the earlier epoch; without validation
    records, the last epoch."""
    scored = curve.dropna(subset=["val_uar", "val_loss"])
    if scored.empty:
        return int(curve["epoch"].max())
    ranked = scored.sort_values(["val_uar", "val_loss", "epoch"], ascending=[False, True, True], kind="stable")
    return int(ranked["epoch"].iloc[0])


def learning_curves_png(curves: pd.DataFrame, classifier: str, title: str, path: str | Path) -> None:
    """Per-epoch train/validation loss and validation UAR, one colour per CV fold (the final fit in
    black), a dot at the epoch each fit kept (:func:`best_epoch`). No rows: a figure that says so."""
    if curves.empty:
        message_png(f"no learning curves: {classifier} has no epochs", path)
        return
    fig, (ax_loss, ax_uar) = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("tab10")
    folds = list(dict.fromkeys(curves["fold"].astype(str)))
    handles = []
    for i, fold in enumerate(folds):
        c = curves[curves["fold"].astype(str) == fold].sort_values("epoch")
        color = "black" if fold == "final" else cmap(i % 10)
        ax_loss.plot(c["epoch"], c["train_loss"], color=color, linewidth=1.4)
        ax_loss.plot(c["epoch"], c["val_loss"], color=color, linewidth=1.4, linestyle="--")
        ax_uar.plot(c["epoch"], c["val_uar"], color=color, linewidth=1.4)
        best = c[c["epoch"] == best_epoch(c)].iloc[0]
        if pd.notna(best["val_uar"]):
            ax_uar.scatter(best["epoch"], best["val_uar"], color=color, s=30, zorder=3, edgecolors="white")
        handles.append(Line2D([], [], color=color, label=fold_name(fold)))
    handles += [Line2D([], [], color="0.4", label="train loss"),
                Line2D([], [], color="0.4", linestyle="--", label="validation loss")]
    ax_loss.set_title("loss", fontsize=9)
    ax_loss.set_ylabel("loss")
    has_val = curves["val_uar"].notna().any()
    ax_uar.set_title("validation UAR (dot: best epoch)" if has_val else "no validation UAR recorded", fontsize=9)
    ax_uar.set_ylabel("UAR")
    for ax in (ax_loss, ax_uar):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(f"{title}\nlearning curves ({classifier})", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _colours(cats: list[str], seed: int = 0) -> dict[str, tuple]:
    """Qualitative colours for few categories; for many, a seeded shuffle of a rainbow so that
    neighbouring ids (speakers) do not get neighbouring hues."""
    if len(cats) <= 10:
        return {c: plt.get_cmap("tab10")(i) for i, c in enumerate(cats)}
    if len(cats) <= 20:
        return {c: plt.get_cmap("tab20")(i) for i, c in enumerate(cats)}
    hues = np.random.default_rng(seed).permutation(len(cats)) / len(cats)
    return {c: plt.get_cmap("turbo")(0.05 + 0.9 * h) for c, h in zip(cats, hues)}


def scatter_png(xy: np.ndarray, panels: dict[str, np.ndarray], title: str, path: str | Path) -> None:
    """One 2-D scatter panel per colouring (e.g. emotion, speaker, sex). Points are drawn in a
    random order so no category hides the others; panels with many categories get no legend."""
    n = len(xy)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.4), squeeze=False)
    size = float(np.clip(3000 / max(n, 1), 1.0, 16.0))
    order = np.random.default_rng(0).permutation(n)
    for ax, (name, values) in zip(axes[0], panels.items()):
        values = np.asarray(values).astype(str)
        cats = sorted(set(values))
        colour = _colours(cats)
        ax.scatter(xy[order, 0], xy[order, 1], s=size, alpha=0.75, linewidths=0,
                   c=[colour[v] for v in values[order]], rasterized=n > 5000)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", "datalim")
        if len(cats) <= LEGEND_MAX:
            ax.set_title(f"coloured by {name}", fontsize=10)
            handles = [Line2D([], [], marker="o", linestyle="", color=colour[c], label=c) for c in cats]
            ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=min(len(cats), 4), frameon=False, handletextpad=0.2)
        else:
            ax.set_title(f"coloured by {name} ({len(cats)}, one colour each)", fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def reliability_bins(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Per equal-width confidence bin (non-empty ones): mean confidence, accuracy and count of the
    top class, the quantities the ECE averages."""
    confidence = proba.max(1)
    correct = proba.argmax(1) == y
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1], right=True), 0, bins - 1)
    rows = [(confidence[which == b].mean(), correct[which == b].mean(), int((which == b).sum()))
            for b in np.unique(which)]
    return pd.DataFrame(rows, columns=["confidence", "accuracy", "count"])


def reliability_png(before: np.ndarray, after: np.ndarray, y: np.ndarray, calibration: dict, title: str,
                    path: str | Path) -> None:
    """Reliability diagram: accuracy against confidence of the out-of-fold predictions, as the
    classifier gave them and as predict applies them (cross-fitted), with the ECE of each."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="perfectly calibrated")
    styles = [("before", before, "tab:red"), (f"after ({calibration.get('method', 'temperature')})", after, "tab:blue")]
    for (name, proba, colour), key in zip(styles, ("ece_before", "ece_after")):
        table = reliability_bins(proba, y)
        ax.plot(table["confidence"], table["accuracy"], marker="o", color=colour,
                label=f"{name}: ECE {calibration.get(key, float('nan')):.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(f"{title}\nreliability of the out-of-fold predictions", fontsize=9)
    _save(fig, path)
