"""Silero VAD (the ``silero-vad`` wheel's model, MIT): speech regions of a recording.

The wheel's sequence ONNX model runs a block of 32 ms frames per call (bit-exact with the streaming
model, ~10x faster than a Python loop over frames); the state (LSTM and the 64-sample context)
carries from one block to the next, so a recording fed block by block (:class:`SpeechProbabilities`)
gets the probabilities of the whole, and the wheel's own state machine
(``get_speech_timestamps_from_probs``) turns them into regions. Silero runs at 16 kHz: other rates
are resampled for it, and the regions mapped back.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from ser.preprocess.params import SileroParams

VAD_RATE = 16000
FRAME, CONTEXT = 512, 64  # samples at 16 kHz
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def silero():
    """The silero_vad package. Importing it sets torch to one thread (silero_vad/model.py), which would
    slow the encoder: the setting is put back."""
    import torch

    with _LOCK:
        threads = torch.get_num_threads()
        import silero_vad
        import silero_vad.utils_vad

        torch.set_num_threads(threads)
    return silero_vad


@lru_cache(maxsize=1)
def session():
    """The ONNX session (thread-safe ``run``), loaded once from the silero-vad package."""
    from importlib.resources import files

    import onnxruntime as ort

    silero()
    options = ort.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1  # one clip per reader thread
    path = files("silero_vad.data").joinpath("silero_vad_16k_sequence.onnx")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class SpeechProbabilities:
    """Per-frame speech probabilities of a recording fed in consecutive blocks (at 16 kHz)."""

    def __init__(self, max_frames: int = 512):
        self.max_frames = max_frames
        self.hidden = np.zeros((1, 1, 128), np.float32)
        self.cell = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)
        self.rest = np.zeros(0, np.float32)
        self.n = 0
        self.probs: list[np.ndarray] = []

    def add(self, block: np.ndarray) -> None:
        self.n += len(block)
        audio = np.concatenate([self.rest, np.asarray(block, np.float32)])
        whole = len(audio) // FRAME * FRAME
        self._run(audio[:whole])
        self.rest = audio[whole:]

    def finish(self) -> np.ndarray:
        if len(self.rest):
            self._run(np.pad(self.rest, (0, FRAME - len(self.rest))))
            self.rest = np.zeros(0, np.float32)
        return np.concatenate(self.probs) if self.probs else np.zeros(0, np.float32)

    def _run(self, audio: np.ndarray) -> None:
        frames = audio.reshape(-1, FRAME)
        for start in range(0, len(frames), self.max_frames):
            part = frames[start:start + self.max_frames]
            contexts = np.concatenate([self.context[None], part[:-1, -CONTEXT:]])
            probs, self.hidden, self.cell = session().run(
                ["speech_probs", "hn", "cn"],
                {"input": np.concatenate([contexts, part], 1), "h": self.hidden, "c": self.cell})
            self.context = part[-1, -CONTEXT:].copy()
            self.probs.append(np.asarray(probs, np.float32).reshape(-1))


def to_vad_rate(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == VAD_RATE:
        return wave
    import soxr

    return soxr.resample(wave, sample_rate, VAD_RATE, quality="HQ").astype(np.float32)


def regions(probs: np.ndarray, n: int, sample_rate: int, p: SileroParams,
            max_seconds: float = float("inf")) -> list[tuple[int, int]]:
    """Speech regions ``[(start, end)]`` in samples at ``sample_rate`` of a recording of ``n`` samples
    there, from its frame probabilities; regions longer than ``max_seconds`` are split at a pause."""
    n16 = int(round(n * VAD_RATE / sample_rate))
    spans = silero().utils_vad.get_speech_timestamps_from_probs(
        list(map(float, probs)), sampling_rate=VAD_RATE, threshold=p.threshold,
        min_speech_duration_ms=p.min_speech_ms, min_silence_duration_ms=p.min_silence_ms,
        speech_pad_ms=p.pad_ms, max_speech_duration_s=max_seconds, audio_length_samples=n16)
    scale = sample_rate / VAD_RATE
    return [(int(round(s["start"] * scale)), min(n, int(round(s["end"] * scale)))) for s in spans]


def speech_regions(wave: np.ndarray, sample_rate: int, p: SileroParams) -> list[tuple[int, int]]:
    """Speech regions of a wave in memory (samples at ``sample_rate``)."""
    probs = SpeechProbabilities()
    probs.add(to_vad_rate(wave, sample_rate))
    return regions(probs.finish(), len(wave), sample_rate, p)


def keep_speech(wave: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """The samples of ``spans`` (padded regions never overlap: Silero splits the pause between them), joined."""
    return np.concatenate([wave[s:e] for s, e in spans]).astype(np.float32, copy=False)


class StreamingRegions:
    """Speech regions of a recording fed block by block at ``sample_rate`` (predict's first pass over a
    long file): the probabilities of the whole, resampled for Silero by one soxr stream."""

    def __init__(self, sample_rate: int):
        import soxr

        self.sample_rate, self.n = sample_rate, 0
        self.probs = SpeechProbabilities()
        self.stream = soxr.ResampleStream(sample_rate, VAD_RATE, 1, dtype="float32", quality="HQ") \
            if sample_rate != VAD_RATE else None

    def add(self, block: np.ndarray) -> None:
        self.n += len(block)
        self.probs.add(self.stream.resample_chunk(block) if self.stream else block)

    def regions(self, p: SileroParams, max_seconds: float = float("inf")) -> list[tuple[int, int]]:
        if self.stream:
            self.probs.add(self.stream.resample_chunk(np.zeros(0, np.float32), last=True))
        return regions(self.probs.finish(), self.n, self.sample_rate, p, max_seconds)
