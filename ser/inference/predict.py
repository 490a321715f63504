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

With a ``preprocess`` chain in the model card (:mod:`ser.preprocess`), a file that fits in one window is
cleaned whole, as training cleaned each clip; a longer one is cut at Silero's speech boundaries (with
``vad: silero``) and each window is cleaned; a window the VAD finds silent is left out of the result.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ser.corpora.audio import EMPTY, decode_error, undecodable
from ser.embeddings import as_rows
from ser.errors import ModelError
from ser.features import preprocessor
from ser.features.stream import reason
from ser.inference.files import NO_SPEECH, FileResult, Loaded, Segment, Survey, collect  # noqa: F401
from ser.inference.grouping import TestTimeAugmentation, classify_by_group
from ser.inference.segment import cut, loud_parts, plan
from ser.models.model_card import ModelCard
from ser.preprocess.pipeline import NoSpeech
from ser.trust.novelty import Novelty, vectors
from ser.trust.speech import speech_presence

log = logging.getLogger(__name__)


class Predictor:
    """A trained model folder, loaded once: extractor + classifier + temperature + novelty score + windows."""

    def __init__(self, extractor: Any, model: Any, card: ModelCard, novelty: Novelty,
                 window_seconds: float | None = None,
                 min_seconds: float = 0.25, silence_dbfs: float = -60.0, top_db: float = 30.0,
                 batch_seconds: float = 60.0, workers: int = 2, block_seconds: float = 30.0):
        self.extractor, self.model, self.card, self.labels = extractor, model, card, list(card.labels)
        self.temperature = card.calibration.temperature
        # above the threshold is unknown only where it applies (set on held-out corpora, or trust.novelty_gate)
        self.novelty, self.threshold = novelty, card.novelty.threshold if card.novelty.applies else float("inf")
        self.speech_threshold = card.novelty.speech_threshold  # a window with less speech is unknown (None: off)
        self.window_seconds = float(window_seconds or card.windows.max_clip_seconds)
        self.target_seconds = min(card.windows.median_clip_seconds, self.window_seconds)
        self.min_seconds, self.silence_dbfs, self.top_db = min_seconds, silence_dbfs, top_db
        self.batch_seconds, self.workers, self.block_seconds = batch_seconds, max(1, workers), block_seconds
        self.sample_rate = int(extractor.sample_rate)
        self.chain = preprocessor(extractor)  # the training run's preprocess chain, or None
        # features.normalize of training: speaker | corpus (a group's windows standardised together), or None
        normalize = card.feature_params.get("features", {}).get("normalize", "none")
        self.group_norm = None if normalize == "none" else normalize
        self.tta = TestTimeAugmentation(0, None, 0, self.sample_rate)

    @classmethod
    def load(cls, folder: str | Path = "models", segment_seconds: float | None = None, device: str | None = None,
             encoder: str | None = None, denoiser: str | None = None, tta: int = 0, allow_download: bool = False,
             precision: str = "fp32", **options: Any) -> Predictor:
        """Load ``folder`` (model.json, the classifier's files; or an exported ONNX bundle, run by onnxruntime with its
        ``precision`` fp32 or int8 encoder, :mod:`ser.export.bundle`); raise ModelError if unusable.

        ``device`` overrides the training run's ``features.device``, ``encoder`` its
        ``features.model`` (an encoder folder that moved), ``denoiser`` its
        ``preprocess.demucs_checkpoint``; the rebuilt extractor's identity must still be the training one.
        A hub encoder is loaded from the local cache only unless ``allow_download``, its weights from
        safetensors files only. ``tta`` augmented copies of each window are averaged with it, made by the
        training run's augment settings.
        """
        from ser.inference.model_files import load_novelty, load_parts
        from ser.models import model_card

        folder = Path(folder)
        card = model_card.read(folder)
        extractor, model, params = load_parts(folder, card, device, encoder, denoiser, allow_download, precision)
        options.setdefault("batch_seconds", params.features.batch_seconds)
        options.setdefault("min_seconds", params.data.min_duration)
        options.setdefault("silence_dbfs", params.data.silence_dbfs)
        predictor = cls(extractor, model, card, load_novelty(folder, card), segment_seconds, **options)
        if tta and predictor.group_norm:
            raise ModelError(f"{folder}: test-time augmentation is not combined with a {predictor.group_norm}-"
                             "normalised model")
        predictor.tta = TestTimeAugmentation(tta, params.augment, params.seed, predictor.sample_rate)
        log.info("loaded %s: %s on %s features (dim %d), %d labels, temperature %.3f, windows up to %.2f s "
                 "(aim %.2f s)", folder, card.classifier, card.identity.get("extractor", "?"), card.dim,
                 len(card.labels), predictor.temperature, predictor.window_seconds, predictor.target_seconds)
        return predictor

    # -- per file -------------------------------------------------------------------------------

    def _read(self, item: tuple[str, str]) -> Loaded:
        """First pass over one file (runs in a reader thread): decode, check, plan its windows."""
        from ser.features.stream import blocks

        path, error = item
        if error:
            return Loaded(path, error)
        sr = self.sample_rate
        vad = self.chain.p if self.chain and self.chain.p.vad != "none" else None
        survey = Survey(sr, int(max(self.block_seconds, self.window_seconds) * sr), vad is not None)
        try:
            if os.path.getsize(path) == 0:
                return Loaded(path, EMPTY)
            for block in blocks(path, sr, self.block_seconds):
                survey.add(block)
        except FileNotFoundError:
            return Loaded(path, "not found")
        except Exception as err:  # noqa: BLE001 - libsndfile raises several types for bad input
            return Loaded(path, undecodable(err))
        n = survey.check.n
        problem = survey.check.reason(self.min_seconds, self.silence_dbfs)
        if problem:
            return Loaded(path, problem, n / sr)
        parts = survey.speech.regions(vad.silero, self.window_seconds) if vad else \
            loud_parts(survey.loudness.finish(), n, sr, self.top_db)
        planned = plan(parts, n, sr, self.window_seconds, self.target_seconds)
        if self.chain and planned == [(0, n)]:  # predicted whole: cleaned here, as training cleaned each clip
            try:
                return Loaded(path, "", n / sr, n, planned, self.chain(survey.wave()), clean=True)
            except Exception as err:  # noqa: BLE001 - no speech, too short to normalise, a denoiser failure
                return Loaded(path, reason(err), n / sr)
        return Loaded(path, "", n / sr, n, planned, survey.wave())

    def _windows(self, item: Loaded) -> Iterator[tuple[int, tuple[int, int], np.ndarray]]:
        """``(index, span, samples)`` of each window of a file (cleaned by the preprocess chain): from the
        kept samples, or a second read."""
        from ser.features.stream import blocks

        if item.clean:
            wave, item.wave = item.wave, None
            yield 0, (0, item.n), wave
            return
        source = [item.wave] if item.wave is not None else blocks(item.path, self.sample_rate, self.block_seconds)
        item.wave = None
        # windows are widened to what the chain can take (loudness normalisation: 0.4 s), never cut shorter
        shortest = max(self.min_seconds, self.chain.min_seconds if self.chain else 0.0)
        for k, (span, wave) in enumerate(cut(source, item.planned, item.n, int(shortest * self.sample_rate))):
            if self.chain:
                try:
                    wave = self.chain(wave)
                except NoSpeech:
                    item.proba[k] = NO_SPEECH  # a window the VAD finds silent is left out of the file's result
                    continue
                except Exception as err:  # noqa: BLE001 - a denoiser or normalisation failure fails this window
                    item.proba[k] = reason(err)
                    continue
            yield k, span, wave

    def _classify(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (len(X), K) in ``labels`` order and the novelty score of each row."""
        proba = np.zeros((len(X), len(self.labels)))
        proba[:, np.asarray(self.model.classes_, dtype=int)] = self.model.predict_proba(X)
        if self.temperature != 1.0:
            from ser.models.calibration import apply_temperature
            proba = apply_temperature(proba, self.temperature)
        return proba, self.novelty.score(vectors(X) if self.novelty.needs_vectors else None, proba)

    # -- streaming ------------------------------------------------------------------------------

    def predict(self, paths: Iterable[str | Path], speakers: str | dict[str, str] | None = None,
                progress: str = "predict") -> Iterator[FileResult]:
        """One FileResult per input file (folders expanded), in input order, as soon as it is complete; a
        progress bar named ``progress`` counts the audio seconds done (none when ``progress`` is empty).

        Files go through ``ser.features.stream.embed_stream`` (the extract stage's loop): reader threads run the first
        pass ahead; windows are cut as batches need them, by length, ``batch_seconds`` of padded audio per batch.
        A speaker-normalised model (``features.normalize: speaker``) needs ``speakers``: one name for all files, or
        {resolved path: speaker}; its files are classified once every window is embedded, each speaker's windows
        standardised with that speaker's statistics. A corpus-normalised one (``corpus``) takes the batch's
        recording set-up as ``speakers`` (one name: all files, at least ``speaker_norm.MIN_CLIPS['corpus']``
        windows; or {path: set-up}).
        """
        from tqdm import tqdm

        from ser.features.stream import embed_stream
        from ser.inference.files import header_seconds

        if self.group_norm and not speakers:
            raise ValueError(f"this model was trained with features.normalize: {self.group_norm}: give the files' "
                             f"{'speakers' if self.group_norm == 'speaker' else 'recording set-up (--adapt)'}")
        pending: deque[Loaded] = deque()
        entries = collect(paths)
        bar = tqdm(total=header_seconds(entries) if progress else 0, desc=f"{progress} ({len(entries)} files)",
                   unit=" s audio", mininterval=2.0, disable=not progress,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}{unit} [{elapsed}<{remaining}]")

        def windows(entry: tuple[str, str], item: Loaded | Exception) -> Iterator[tuple[tuple, np.ndarray]]:
            if isinstance(item, Exception):  # _read reports problems itself; this is a bug guard
                item = Loaded(entry[0], f"{type(item).__name__}: {item}")
            item.spans, item.proba = list(item.planned), [None] * len(item.planned)
            pending.append(item)
            try:
                for k, span, wave in self._windows(item):
                    item.spans[k] = span
                    if self.speech_threshold is not None:
                        item.speech[k] = speech_presence(wave, self.sample_rate)
                    yield from self.tta.waves((item, k), wave)
            except Exception as err:  # noqa: BLE001 - the second read failed: the file changed or vanished
                item.error = f"not readable a second time: {decode_error(err)}"
                item.proba = [item.error if p is None else p for p in item.proba]

        waiting: list[tuple[tuple, np.ndarray]] = []  # speaker normalisation: windows held until all are embedded
        try:
            for batch in embed_stream(entries, self._read, windows, self.extractor, self.batch_seconds, self.workers):
                # each window done moves the bar by its share of its file's duration (test-time copies: not again), up
                # to the headers' total (a decoded length may differ from its header's by a few samples)
                done = sum(key[0].duration / len(key[0].planned) for key in batch.keys if len(key) == 2)
                bar.update(max(0.0, min(done, bar.total - bar.n)))
                good = [i for i, r in enumerate(batch.results) if not isinstance(r, str)]
                if self.group_norm:
                    waiting += [(batch.keys[i], batch.results[i]) for i in good]
                elif good:
                    proba, novelty = self._classify(as_rows([batch.results[i] for i in good]))
                    for i, p, n in zip(good, proba, novelty):
                        batch.results[i] = (p, float(n))
                for key, result in zip(batch.keys, batch.results):
                    if not (self.group_norm and not isinstance(result, str)):
                        self.tta.collect(key, result)
                while pending and pending[0].complete:
                    yield self._result(pending.popleft())
        finally:
            bar.close()
        if waiting:
            classify_by_group(self._classify, waiting, speakers, self.group_norm)
        while pending:
            yield self._result(pending.popleft())

    def _result(self, item: Loaded) -> FileResult:
        sr = self.sample_rate
        result = FileResult(item.path, round(item.duration, 3), item.error,
                            segmented=item.duration > self.window_seconds)
        failed = [p for p in item.proba if isinstance(p, str)]
        kept = [(k, span, p) for k, (span, p) in enumerate(zip(item.spans, item.proba)) if p is not NO_SPEECH]
        if result.error or failed or not kept:
            result.error = result.error or (failed[0] if failed else "no speech found by Silero VAD in any window")
            return result
        result.segments = [Segment(round(s / sr, 3), round(e / sr, 3), p, n, self._rejects(n, item.speech.get(k)),
                                   item.speech.get(k)) for k, (s, e), (p, n) in kept]
        weights = np.array([e - s for _, (s, e), _ in kept], dtype=float)
        result.proba = np.average(np.stack([p for _, _, (p, _) in kept]), axis=0, weights=weights)
        result.novelty = float(np.average([n for _, _, (_, n) in kept], weights=weights))
        result.speech = max(item.speech.values()) if item.speech else None
        result.unknown = self._rejects(result.novelty, result.speech)
        return result

    def _rejects(self, novelty: float, speech: float | None) -> bool:
        """Unknown: unlike the training clips (novelty above the threshold) or not speech (trust.speech)."""
        return novelty > self.threshold or (speech is not None and speech < self.speech_threshold)
