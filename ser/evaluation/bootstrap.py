"""Bootstrap 95% intervals of UAR and accuracy over speakers: resample speakers, not clips.

Clips of one speaker are not independent (one voice, one recording set-up), so resampling clips would
make the interval too narrow. Each resample draws as many speakers as there are, with replacement, and
pools all their out-of-fold predictions; the interval is the 2.5th and 97.5th percentile. A corpus with a
single speaker id (a folder without speakers) has nothing to resample but its clips: then clips are
resampled, and ``over`` says so. With 2 to ``MIN_SPEAKERS - 1`` speakers there is no interval: ``uar`` and
``accuracy`` are None and ``none`` says why (every place that prints an interval prints that instead).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 1000
# Fewer speakers than this and a speaker-bootstrap "interval" is a handful of resample outcomes, not an
# interval (4 speakers: 35 distinct resamples): none is reported below it.
MIN_SPEAKERS = 10


def no_interval(speakers: int) -> str:
    """Why a corpus of ``speakers`` speakers (2 .. MIN_SPEAKERS - 1) gets no bootstrap interval."""
    return f"none: {speakers} speakers, under {MIN_SPEAKERS}"


def speaker_bootstrap(oof: pd.DataFrame, labels: list[str], seed: int, resamples: int = RESAMPLES) -> dict:
    """{uar: [low, high] | None, accuracy: [low, high] | None, resamples, speakers, over[, none]} from
    models/oof.csv's rows."""
    index = {lab: i for i, lab in enumerate(labels)}
    actual = oof["actual"].astype(str).map(index).to_numpy()
    predicted = oof["predicted"].astype(str).map(index).to_numpy()
    speaker_codes, speakers = pd.factorize(oof["speaker"].astype(str))
    over = "speakers" if len(speakers) >= 2 else "clips"
    if over == "speakers" and len(speakers) < MIN_SPEAKERS:
        return {"uar": None, "accuracy": None, "resamples": 0, "speakers": len(speakers), "over": over,
                "none": no_interval(len(speakers))}
    if over == "clips":
        speaker_codes = np.arange(len(oof))
    k, n_speakers = len(labels), int(speaker_codes.max()) + 1 if len(oof) else 0
    # per speaker: clips per (actual class) and correct clips per class, so a resample is a weighted sum
    total = np.zeros((n_speakers, k))
    correct = np.zeros((n_speakers, k))
    np.add.at(total, (speaker_codes, actual), 1)
    np.add.at(correct, (speaker_codes, actual), actual == predicted)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n_speakers, n_speakers), minlength=n_speakers)
                       for _ in range(resamples)])  # (resamples, speakers): how often each speaker is drawn
    support, hits = counts @ total, counts @ correct
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    uar = np.nanmean(recall, axis=1)  # over the classes present in the resample, as scores() does
    accuracy = hits.sum(1) / support.sum(1)
    return {"uar": [float(v) for v in np.percentile(uar, [2.5, 97.5])],
            "accuracy": [float(v) for v in np.percentile(accuracy, [2.5, 97.5])],
            "resamples": resamples, "speakers": len(speakers), "over": over}
