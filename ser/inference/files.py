"""Per-file records of predict: the inputs found (:func:`collect`), what a first pass over a file tells
(:class:`Survey`), a file in flight (:class:`Loaded`) and its result (:class:`FileResult`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser.corpora.audio import AUDIO_EXTENSIONS, AudioCheck, audio_files
from ser.inference.segment import Loudness

NO_SPEECH = object()  # a window's result when the VAD finds no speech in it


@dataclass
class Segment:
    """Calibrated class probabilities of one window of a file (times in seconds), its novelty score and
    whether that rejects it as unlike the training corpus (``unknown``, :mod:`ser.trust`)."""

    start: float
    end: float
    proba: np.ndarray
    novelty: float = 0.0
    unknown: bool = False
    speech: float | None = None  # the highest Silero speech probability of its frames (trust.speech)


@dataclass
class FileResult:
    """One input: an utterance-level ``proba`` and ``novelty`` (duration-weighted means of its segments'),
    ``unknown`` when that novelty is above the model's threshold, or an ``error``."""

    path: str
    duration: float = 0.0
    error: str = ""
    segments: list[Segment] = field(default_factory=list)
    segmented: bool = False  # longer than the window, so cut into segments
    proba: np.ndarray | None = None
    novelty: float | None = None
    unknown: bool = False
    speech: float | None = None  # the highest of its segments'

    @property
    def ok(self) -> bool:
        return not self.error


def collect(paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    """``(path, error)`` per input: folders expand recursively to their audio files
    (``ser.corpora.audio.audio_files``, as corpus scanning lists them); a file named explicitly is tried
    whatever its extension; a missing path gets an error."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = audio_files(p)
            out.extend((str(f), "") for f in found)
            if not found:
                out.append((str(p), f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder"))
        elif p.exists():
            out.append((str(p), ""))
        else:
            out.append((str(p), "not found"))
    return out


def header_duration(path: str | Path) -> float | None:
    """A file's audio seconds from its header (nothing decoded); None when the header cannot be read (the file
    is reported when it is read)."""
    import soundfile as sf

    with contextlib.suppress(Exception):  # libsndfile raises several types for bad input
        return sf.info(str(path)).duration
    return None


def header_seconds(entries: list[tuple[str, str]]) -> float:
    """The audio seconds of the readable ``(path, error)`` entries, from their headers."""
    return sum(d for path, error in entries if not error and (d := header_duration(path)) is not None)


@dataclass
class Loaded:
    path: str
    error: str = ""
    duration: float = 0.0
    n: int = 0  # samples
    planned: list[tuple[int, int]] = field(default_factory=list)  # windows before their edges settle
    wave: np.ndarray | None = None  # the samples, when the file came in one block
    clean: bool = False  # wave is already preprocessed (a file predicted whole)
    spans: list[tuple[int, int]] = field(default_factory=list)
    proba: list[tuple[np.ndarray, float] | str | None] = field(default_factory=list)  # (proba, novelty)
    speech: dict[int, float] = field(default_factory=dict)  # window -> its speech presence (trust.speech)
    parts: dict[int, list] = field(default_factory=dict)  # test-time augmentation: a window's results so far

    @property
    def complete(self) -> bool:
        return all(p is not None for p in self.proba)


class Survey:
    """What a first pass over a recording's blocks tells: the audio check, the frame loudness, and
    the samples themselves while there are at most ``keep`` of them."""

    def __init__(self, sample_rate: int, keep: int, vad: bool = False):
        self.check, self.loudness, self.keep = AudioCheck(sample_rate), Loudness(sample_rate), keep
        self.kept: list[np.ndarray] | None = []
        self.speech = None
        if vad:
            from ser.preprocess.vad import StreamingRegions

            self.speech = StreamingRegions(sample_rate)

    def add(self, block: np.ndarray) -> None:
        self.check.add(block)
        self.loudness.add(block)
        if self.speech:
            self.speech.add(block)
        self.kept = self.kept + [block] if self.kept is not None and self.check.n <= self.keep else None

    def wave(self) -> np.ndarray | None:
        return np.concatenate(self.kept) if self.kept else None
