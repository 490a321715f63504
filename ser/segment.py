"""Cut a long recording into clip-sized windows around its voiced parts.

A recording no longer than the window is kept whole (exactly what training saw). A longer one is
split at silences (``librosa.effects.split``): voiced parts separated by short pauses are merged
while the merged window stays within the limit, parts longer than the limit are cut into equal
pieces, and each window is widened with the audio around it towards the length of a typical
training clip (``target_seconds``, the median), never past the middle of the pause to its neighbour
and never into digital silence. Training clips hold pauses before and after the speech (RAVDESS:
about half of each clip), and pooled embeddings depend on them: Whisper-base + SVM labelled 9 of 9
RAVDESS clips right as recorded but 4 of 9 cut to their speech. A voiced burst shorter than the
minimum is widened with its surroundings to the minimum length (it may then overlap a neighbour).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

DEFAULT_WINDOW_SECONDS = 5.0  # when model.json has no max_clip_seconds


def training_window(durations: Iterable[float], quantile: float = 1.0) -> float:
    """``max_clip_seconds`` for model.json: the longest training clip (or a ``quantile`` of their
    durations, should a few outliers be far longer than the rest), rounded up to 10 ms."""
    values = np.asarray(list(durations), dtype=float)
    if not len(values):
        return DEFAULT_WINDOW_SECONDS
    return math.ceil(float(np.quantile(values, quantile)) * 100) / 100


def windows(wave: np.ndarray, sample_rate: int, max_seconds: float, top_db: float = 30.0,
            min_seconds: float = 0.25, target_seconds: float | None = None, max_gap_seconds: float = 1.0
            ) -> list[tuple[int, int]]:
    """Sample ranges ``(start, end)`` to predict on, each at most ``max_seconds`` long and, where the
    pauses around it allow, about ``target_seconds`` long (default: ``max_seconds``)."""
    n = len(wave)
    limit = max(1, int(round(max_seconds * sample_rate)))
    target = min(limit, int(round((target_seconds or max_seconds) * sample_rate)))
    if n <= limit:
        return [(0, n)]
    import librosa  # lazy: only long recordings need it here

    frame = 1 << max(6, round(math.log2(0.064 * sample_rate)))  # ~64 ms frames
    voiced = librosa.effects.split(wave, top_db=top_db, frame_length=frame, hop_length=frame // 4)
    gap = int(max_gap_seconds * sample_rate)
    merged: list[list[int]] = []
    for s, e in voiced.tolist():
        if merged and s - merged[-1][1] <= gap and e - merged[-1][0] <= limit:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    pieces = []
    for s, e in merged:
        edges = np.linspace(s, e, math.ceil((e - s) / limit) + 1).round().astype(int).tolist()
        pieces.extend(zip(edges[:-1], edges[1:]))
    out: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(pieces):  # grow towards the target, centred, up to the middle of each pause
        lo = (pieces[i - 1][1] + s) // 2 if i else 0
        hi = (e + pieces[i + 1][0]) // 2 if i + 1 < len(pieces) else n
        start = max(lo, s - max(0, target - (e - s)) // 2)
        end = min(hi, max(e, start + target))
        start = max(lo, min(start, end - target))  # room left on the right: give it to the left
        out.append(_trim_digital_silence(wave, start, end))
    return [_widen(s, e, n, int(min_seconds * sample_rate)) for s, e in out if e > s]


def _trim_digital_silence(wave: np.ndarray, start: int, end: int, floor: float = 1e-5) -> tuple[int, int]:
    """Drop runs of (near) exact zeros at the edges: frames of digital silence give MFCCs of log(0)
    that no training clip with a noise floor had, and swing the statistics of a short window."""
    loud = np.flatnonzero(np.abs(wave[start:end]) > floor)
    return (start + int(loud[0]), start + int(loud[-1]) + 1) if len(loud) else (start, end)


def _widen(start: int, end: int, n: int, min_len: int) -> tuple[int, int]:
    """Grow ``[start, end)`` around its centre to ``min_len`` samples, staying inside ``[0, n)``."""
    if end - start >= min_len:
        return start, end
    start = max(0, (start + end - min_len) // 2)
    end = min(n, start + min_len)
    return max(0, end - min_len), end
