"""The splits inside a training fold, for whatever needs held-out data there.

The MLP's early stopping, the SVM's probability calibration, the layer choice, the ensemble and the
tuning objective split their training rows again with :func:`grouped_folds` / :func:`validation_split`,
over the units :func:`split_units` picks: whole speakers when the outer folds are by speaker and the
rows hold two or more of them, else whole clips (so augmented copies always travel with their original).
Only original clips are scored. Which units were used is returned with the split, so the fold record
can say it.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


def split_units(n: int, groups: np.ndarray | None = None, clip_ids: np.ndarray | None = None,
                scored: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """What an inner split must keep whole, per row, and its name: the speaker when given and the
    scored rows hold two or more speakers; else the clip (so an augmented copy stays with its
    original); else the row itself. A fallback from speakers to clips is named as such."""
    def checked(units: np.ndarray) -> np.ndarray:
        units = np.asarray(units)
        if len(units) != n:
            raise ValueError(f"got {len(units)} group labels for {n} rows")
        return units

    fallback = ""
    if groups is not None:
        groups = checked(groups)
        n_speakers = len(np.unique(groups if scored is None else groups[np.asarray(scored, bool)]))
        if n_speakers >= 2:
            return groups, "speakers"
        fallback = f" (fallback: {n_speakers} speaker in these rows, so whole clips are held out instead)"
    if clip_ids is not None:
        return checked(clip_ids), "clips" + fallback
    return np.arange(n), "rows" + fallback


def grouped_folds(y: np.ndarray, units: np.ndarray, n_splits: int, seed: int,
                  scored: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that never cut a unit (speaker/clip): a list of (train rows, held-out rows).

    ``scored`` marks the rows that may be held out and scored (the original clips); the other rows
    of a held-out unit (its augmented copies) go to neither side. Without it the held-out sides
    partition all rows. ``n_splits`` is lowered to the number of units when there are fewer.
    """
    y, units = np.asarray(y), np.unique(np.asarray(units), return_inverse=True)[1]  # integer codes: fast isin
    scored = np.ones(len(y), bool) if scored is None else np.asarray(scored, bool)
    n_units = len(np.unique(units[scored]))
    if n_units < 2:
        raise ValueError(f"cannot hold out data: the training rows have {n_units} speaker/clip group(s)")
    n_splits = min(n_splits, n_units)
    rows = np.flatnonzero(scored)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    out = []
    for _, held in splitter.split(np.zeros(len(rows)), y[rows], groups=units[rows]):
        held_out = np.isin(units, units[rows[held]])
        out.append((np.flatnonzero(~held_out), np.flatnonzero(held_out & scored)))
    return out


def validation_split(y: np.ndarray, groups: np.ndarray | None = None, clip_ids: np.ndarray | None = None,
                     aug: np.ndarray | None = None, fraction: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(train rows, validation rows, units held out) holding out about ``fraction`` of the speakers
    (or of the clips when fewer than two speakers are given, see :func:`split_units`). Validation rows
    are original clips only (``aug == 0``); augmented copies of a validation clip are on neither side."""
    scored = None if aug is None else np.asarray(aug) == 0
    units, kind = split_units(len(y), groups, clip_ids, scored)
    n_splits = max(2, round(1 / fraction))
    train, val = grouped_folds(y, units, n_splits, seed, scored)[0]
    return train, val, kind
