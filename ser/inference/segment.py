"""Cut a long recording into clip-sized windows around its voiced parts.

A recording no longer than the window is kept whole (exactly what training saw). A longer one is
split at silences (``librosa.effects.split``; with ``preprocess.vad: silero``, at Silero's speech
boundaries): voiced parts separated by short pauses are merged
while the merged window stays within the limit, parts longer than the limit are cut into equal
pieces, and each window is widened with the audio around it towards the length of a typical
training clip (``target_seconds``, the median), never past the middle of the pause to its neighbour
and never into digital silence. Training clips hold pauses before and after the speech (RAVDESS:
about half of each clip), and pooled embeddings depend on them: Whisper-base + SVM labelled 9 of 9
RAVDESS clips right as recorded but 4 of 9 cut to their speech. A voiced burst shorter than the
minimum is widened with its surroundings to the minimum length (it may then overlap a neighbour).

The recording need not be in memory: :class:`Loudness` takes it block by block, :func:`plan` places
the windows from its frame levels (the silence threshold is relative to the loudest frame of the
whole recording, so this needs the whole pass), and :func:`cut` takes their samples from a second
pass over the blocks. :func:`windows` does all three on a wave in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

DEFAULT_WINDOW_SECONDS = 5.0  # when there are no training clip durations


def training_window(durations: Iterable[float], quantile: float = 1.0) -> float:
    """``max_clip_seconds`` for model.json: the longest training clip (or a ``quantile`` of their
    durations, should a few outliers be far longer than the rest), rounded up to 10 ms."""
    values = np.asarray(list(durations), dtype=float)
    if not len(values):
        return DEFAULT_WINDOW_SECONDS
    return math.ceil(float(np.quantile(values, quantile)) * 100) / 100


def frame_length(sample_rate: int) -> int:
    """Samples per loudness frame: a power of two of about 64 ms (hop: a quarter of it)."""
    return 1 << max(6, round(math.log2(0.064 * sample_rate)))


class Loudness:
    """Frame RMS of a recording fed block by block (``add``, then ``finish``): the frames of
    ``librosa.feature.rms`` (centred, zero-padded at both ends) on the whole, without holding it."""

    def __init__(self, sample_rate: int):
        self.frame = frame_length(sample_rate)
        self.hop = self.frame // 4
        self._carry = np.zeros(self.frame // 2, np.float32)
        self._rms: list[np.ndarray] = []

    def add(self, block: np.ndarray) -> None:
        carry = np.concatenate([self._carry, block])
        if len(carry) >= self.frame:
            squares = np.square(carry, dtype=np.float32)  # librosa squares in float32, then means each frame
            frames = np.lib.stride_tricks.sliding_window_view(squares, self.frame)[:: self.hop].T
            self._rms.append(np.sqrt(np.mean(frames, axis=0)))
            carry = carry[frames.shape[1] * self.hop:]
        self._carry = carry

    def finish(self) -> np.ndarray:
        self.add(np.zeros(self.frame // 2, self._carry.dtype))
        return np.concatenate(self._rms)


def voiced(rms: np.ndarray, n: int, hop: int, top_db: float) -> list[list[int]]:
    """``librosa.effects.split`` from frame RMS: sample ranges louder than ``top_db`` below the loudest frame."""
    import librosa  # lazy: only long recordings need it here

    loud = librosa.amplitude_to_db(rms, ref=np.max, top_db=None) > -top_db
    edges = [[0]] * bool(loud[0]) + [np.flatnonzero(np.diff(loud.astype(int))) + 1] + [[len(loud)]] * bool(loud[-1])
    return np.minimum(np.concatenate(edges).astype(int) * hop, n).reshape(-1, 2).tolist()


def loud_parts(rms: np.ndarray, n: int, sample_rate: int, top_db: float = 30.0) -> list[list[int]]:
    """The voiced parts :func:`plan` groups, from frame RMS (:class:`Loudness`); with the VAD on, predict
    gives Silero's speech regions instead (:class:`ser.preprocess.vad.StreamingRegions`)."""
    return voiced(rms, n, frame_length(sample_rate) // 4, top_db)


def plan(parts: list, n: int, sample_rate: int, max_seconds: float, target_seconds: float | None = None,
         max_gap_seconds: float = 1.0) -> list[tuple[int, int]]:
    """Windows of a recording of ``n`` samples with voiced ``parts`` (sample ranges) before their edges
    are settled (:func:`settle`): ``[(0, n)]`` when it fits in ``max_seconds``."""
    limit = max(1, int(round(max_seconds * sample_rate)))
    target = min(limit, int(round((target_seconds or max_seconds) * sample_rate)))
    if n <= limit:
        return [(0, n)]
    gap = int(max_gap_seconds * sample_rate)
    merged: list[list[int]] = []
    for s, e in parts:
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
        if end > start:
            out.append((start, end))
    return out


def reach(span: tuple[int, int], n: int, min_len: int) -> tuple[int, int]:
    """The samples :func:`settle` may look at for ``span``: the whole recording for ``(0, n)``."""
    return (0, n) if span == (0, n) else (max(0, span[0] - min_len), min(n, span[1] + min_len))


def settle(wave: np.ndarray, offset: int, span: tuple[int, int], n: int, min_len: int) -> tuple[int, int]:
    """Final edges of a planned window: digital silence trimmed, then widened to ``min_len``; a
    window over the whole recording is kept as is. ``wave`` holds samples from ``offset`` on,
    at least :func:`reach` of the span."""
    if span == (0, n):
        return span
    start, end = _trim_digital_silence(wave, span[0] - offset, span[1] - offset)
    return _widen(start + offset, end + offset, n, min_len)


def cut(blocks: Iterable[np.ndarray], spans: list[tuple[int, int]], n: int, min_len: int
        ) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """``(final span, its samples)`` per planned span (in order), from the recording's consecutive
    ``blocks``; only the blocks under the current window's :func:`reach` are held."""
    blocks = iter(blocks)
    buf, at = np.zeros(0, np.float32), 0  # buf holds samples [at, at + len(buf))
    for span in spans:
        lo, hi = reach(span, n, min_len)
        while True:
            drop = min(max(0, lo - at), len(buf))  # reaches never move back: what lies before is done
            buf, at = buf[drop:], at + drop
            if at + len(buf) >= hi:
                break
            block = next(blocks, None)
            if block is None:
                raise EOFError(f"the recording ended at sample {at + len(buf)}, before {hi}: it changed while read")
            buf = np.concatenate([buf, block]) if len(buf) else block
        start, end = settle(buf, at, span, n, min_len)
        yield (start, end), buf[start - at:end - at].copy()


def windows(wave: np.ndarray, sample_rate: int, max_seconds: float, top_db: float = 30.0,
            min_seconds: float = 0.25, target_seconds: float | None = None, max_gap_seconds: float = 1.0
            ) -> list[tuple[int, int]]:
    """Sample ranges ``(start, end)`` to predict on, each at most ``max_seconds`` long and, where the
    pauses around it allow, about ``target_seconds`` long (default: ``max_seconds``)."""
    n = len(wave)
    loudness = Loudness(sample_rate)
    loudness.add(wave)
    spans = plan(loud_parts(loudness.finish(), n, sample_rate, top_db), n, sample_rate, max_seconds, target_seconds,
                 max_gap_seconds)
    return [settle(wave, 0, span, n, int(min_seconds * sample_rate)) for span in spans]


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
