"""Predict emotions of audio files with a trained model folder (``models/``).

``Predictor.load`` reads the model card (``ser.models.model_card``), rebuilds the training extractor from
its feature params and refuses a folder whose feature identity or dimension do not match; nothing
it loads can execute code (``ser.inference.model_files``). ``Predictor.predict`` streams files through the
embedding core (``ser.features.stream.embed_stream``, as the extract stage does): reader threads make a first
pass over each file ahead (decode, check, place its windows), keeping the samples of a file that
fits in one block (``block_seconds``); a longer one is read again, block by block, as its windows
are cut, so memory is bounded by blocks and batches of audio however long the files. One
:class:`FileResult` per input comes back in input order, with an error instead of a guess for
missing, undecodable, empty, too short or silent input.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser.corpora.audio import AUDIO_EXTENSIONS, EMPTY, AudioCheck, audio_files, decode_error, undecodable
from ser.embeddings import as_rows
from ser.inference.segment import Loudness, cut, plan
from ser.models.model_card import ModelCard

log = logging.getLogger(__name__)


@dataclass
class Segment:
    """Calibrated class probabilities of one window of a file (times in seconds)."""

    start: float
    end: float
    proba: np.ndarray


@dataclass
class FileResult:
    """One input: an utterance-level ``proba`` (duration-weighted mean of its segments) or an ``error``."""

    path: str
    duration: float = 0.0
    error: str = ""
    segments: list[Segment] = field(default_factory=list)
    segmented: bool = False  # longer than the window, so cut into segments
    proba: np.ndarray | None = None

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


@dataclass
class _Loaded:
    path: str
    error: str = ""
    duration: float = 0.0
    n: int = 0  # samples
    planned: list[tuple[int, int]] = field(default_factory=list)  # windows before their edges settle
    wave: np.ndarray | None = None  # the samples, when the file came in one block
    spans: list[tuple[int, int]] = field(default_factory=list)
    proba: list[np.ndarray | str | None] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(p is not None for p in self.proba)


class _Survey:
    """What a first pass over a recording's blocks tells: the audio check, the frame loudness, and
    the samples themselves while there are at most ``keep`` of them."""

    def __init__(self, sample_rate: int, keep: int):
        self.check, self.loudness, self.keep = AudioCheck(sample_rate), Loudness(sample_rate), keep
        self.kept: list[np.ndarray] | None = []

    def add(self, block: np.ndarray) -> None:
        self.check.add(block)
        self.loudness.add(block)
        self.kept = self.kept + [block] if self.kept is not None and self.check.n <= self.keep else None

    def wave(self) -> np.ndarray | None:
        return np.concatenate(self.kept) if self.kept else None


class Predictor:
    """A trained model folder, loaded once: extractor + classifier + temperature + windows."""

    def __init__(self, extractor: Any, model: Any, card: ModelCard, window_seconds: float | None = None,
                 min_seconds: float = 0.25, silence_dbfs: float = -60.0, top_db: float = 30.0,
                 batch_seconds: float = 60.0, workers: int = 2, block_seconds: float = 30.0):
        self.extractor, self.model, self.card, self.labels = extractor, model, card, list(card.labels)
        self.temperature = card.calibration.temperature
        self.window_seconds = float(window_seconds or card.windows.max_clip_seconds)
        self.target_seconds = min(card.windows.median_clip_seconds, self.window_seconds)
        self.min_seconds, self.silence_dbfs, self.top_db = min_seconds, silence_dbfs, top_db
        self.batch_seconds, self.workers, self.block_seconds = batch_seconds, max(1, workers), block_seconds
        self.sample_rate = int(extractor.sample_rate)

    @classmethod
    def load(cls, folder: str | Path = "models", segment_seconds: float | None = None, device: str | None = None,
             encoder: str | None = None, **options: Any) -> Predictor:
        """Load ``folder`` (model.json, the classifier's files); raise ModelError if unusable.

        ``device`` overrides the training run's ``features.device``, ``encoder`` its
        ``features.model`` (an encoder folder that moved); the rebuilt extractor's identity must
        still be the training one.
        """
        from ser.inference.model_files import load_classifier, rebuild_extractor
        from ser.models import model_card

        folder = Path(folder)
        card = model_card.read(folder)
        extractor, params = rebuild_extractor(card, folder, device, encoder)
        model = load_classifier(folder, card.classifier, card.dim)
        options.setdefault("batch_seconds", params.features.batch_seconds)
        options.setdefault("min_seconds", params.data.min_duration)
        options.setdefault("silence_dbfs", params.data.silence_dbfs)
        predictor = cls(extractor, model, card, segment_seconds, **options)
        log.info("loaded %s: %s on %s features (dim %d), %d labels, temperature %.3f, windows up to %.2f s "
                 "(aim %.2f s)", folder, card.classifier, card.identity.get("extractor", "?"), card.dim,
                 len(card.labels), predictor.temperature, predictor.window_seconds, predictor.target_seconds)
        return predictor

    # -- per file -------------------------------------------------------------------------------

    def _read(self, item: tuple[str, str]) -> _Loaded:
        """First pass over one file (runs in a reader thread): decode, check, plan its windows."""
        from ser.features.stream import blocks

        path, error = item
        if error:
            return _Loaded(path, error)
        sr = self.sample_rate
        survey = _Survey(sr, int(self.block_seconds * sr))
        try:
            if os.path.getsize(path) == 0:
                return _Loaded(path, EMPTY)
            for block in blocks(path, sr, self.block_seconds):
                survey.add(block)
        except FileNotFoundError:
            return _Loaded(path, "not found")
        except Exception as err:  # noqa: BLE001 - libsndfile raises several types for bad input
            return _Loaded(path, undecodable(err))
        n = survey.check.n
        reason = survey.check.reason(self.min_seconds, self.silence_dbfs)
        if reason:
            return _Loaded(path, reason, n / sr)
        planned = plan(survey.loudness.finish(), n, sr, self.window_seconds, self.top_db, self.target_seconds)
        return _Loaded(path, "", n / sr, n, planned, survey.wave())

    def _windows(self, item: _Loaded) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        """``(span, samples)`` of each window of a file: from the kept samples, or a second read."""
        from ser.features.stream import blocks

        source = [item.wave] if item.wave is not None else blocks(item.path, self.sample_rate, self.block_seconds)
        item.wave = None
        return cut(source, item.planned, item.n, int(self.min_seconds * self.sample_rate))

    def _classify(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (len(X), K) in ``labels`` order."""
        proba = np.zeros((len(X), len(self.labels)))
        proba[:, np.asarray(self.model.classes_, dtype=int)] = self.model.predict_proba(X)
        if self.temperature != 1.0:
            from ser.models.calibration import apply_temperature
            proba = apply_temperature(proba, self.temperature)
        return proba

    # -- streaming ------------------------------------------------------------------------------

    def predict(self, paths: Iterable[str | Path]) -> Iterator[FileResult]:
        """One FileResult per input file (folders expanded), in input order, as soon as it is complete.

        Files go through ``ser.features.stream.embed_stream`` (the extract stage's loop): the first pass runs
        ahead on reader threads, windows are cut as the batches need them, batched by similar
        length with at most ``batch_seconds`` of padded audio per ``extractor.transform`` call.
        """
        from ser.features.stream import embed_stream

        pending: deque[_Loaded] = deque()

        def windows(entry: tuple[str, str], item: _Loaded | Exception) -> Iterator[tuple[tuple, np.ndarray]]:
            if isinstance(item, Exception):  # _read reports problems itself; this is a bug guard
                item = _Loaded(entry[0], f"{type(item).__name__}: {item}")
            item.spans, item.proba = list(item.planned), [None] * len(item.planned)
            pending.append(item)
            try:
                for k, (span, wave) in enumerate(self._windows(item)):
                    item.spans[k] = span
                    yield (item, k), wave
            except Exception as err:  # noqa: BLE001 - the second read failed: the file changed or vanished
                item.error = f"not readable a second time: {decode_error(err)}"
                item.proba = [item.error if p is None else p for p in item.proba]

        for batch in embed_stream(collect(paths), self._read, windows, self.extractor, self.batch_seconds,
                                  self.workers):
            good = [i for i, r in enumerate(batch.results) if not isinstance(r, str)]
            proba = self._classify(as_rows([batch.results[i] for i in good])) if good else []
            for i, p in zip(good, proba):
                batch.results[i] = p
            for (item, k), result in zip(batch.keys, batch.results):
                item.proba[k] = result
            while pending and pending[0].complete:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    def _result(self, item: _Loaded) -> FileResult:
        sr = self.sample_rate
        result = FileResult(item.path, round(item.duration, 3), item.error,
                            segmented=item.duration > self.window_seconds)
        failed = [p for p in item.proba if isinstance(p, str)]
        if result.error or failed:
            result.error = result.error or failed[0]
            return result
        result.segments = [Segment(round(s / sr, 3), round(e / sr, 3), p) for (s, e), p in zip(item.spans, item.proba)]
        weights = np.array([e - s for s, e in item.spans], dtype=float)
        result.proba = np.average(np.stack(item.proba), axis=0, weights=weights)
        return result
