"""Streaming clips to an extractor with bounded memory: the embedding core of extract and predict.

:func:`embed_stream` is the one loop both use. A few threads read (decode, resample, augment) a
bounded number of clips ahead of the consumer; batches are then cut from a small window of loaded
clips kept sorted by length, so clips of similar length share a batch, padding stays small, and
memory is a few batches of audio however large the corpus. A batch holds as many clips as fit in
``max_samples`` including padding (clips x longest clip) while padding stays under ``max_padding``
of it; a single clip longer than ``max_samples`` makes a batch of its own. A recording too long to
hold is read in blocks (:func:`blocks`). A batch that fails is retried clip by clip, so one broken
clip costs only its own vector, and a vector holding NaN or infinite values is a failure, never a
result.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np


@dataclass(frozen=True)
class Job:
    """One vector to compute: augmented copy ``aug`` (0 = the original) of a manifest clip."""

    clip_id: str
    path: str
    sha1: str
    aug: int = 0
    seconds: float = 0.0  # expected length, for ordering


Loaded = tuple[Any, np.ndarray]  # (key, wave)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Embedded:
    """One batch done: per key its vector (float32, finite) or frames, or why it failed, and the wave lengths."""

    keys: list
    results: list[np.ndarray | str]
    lengths: list[int]


def embed_stream(items: Iterable[T], read: Callable[[T], R], waves: Callable[[T, R | Exception], Iterable[Loaded]],
                 extractor: Any, batch_seconds: float, workers: int = 2) -> Iterator[Embedded]:
    """Embed keyed waves of ``items`` in batches of similar length, at most ``batch_seconds`` of audio
    (padding included) each.

    ``read(item)`` runs on ``workers`` reader threads, a bounded number of items ahead
    (:func:`read_ahead`); ``waves(item, read(item) or the exception it raised)`` then gives that
    item's ``(key, wave)`` pairs, in item order, in the calling thread.
    """
    def keyed() -> Iterator[Loaded]:
        for item, got in read_ahead(items, read, workers, ahead=4 * workers + 8):
            yield from waves(item, got)

    for batch in length_batches(keyed(), max(1, int(batch_seconds * extractor.sample_rate))):
        wave_list = [w for _, w in batch]
        yield Embedded([job for job, _ in batch], embed_batch(extractor, wave_list), [len(w) for w in wave_list])


def embed_batch(extractor: Any, waves: list[np.ndarray]) -> list[np.ndarray | str]:
    """One vector or one failure reason per wave; a failing batch is retried wave by wave to find the culprit."""
    try:
        X = extractor.transform(waves)
        X = np.asarray(X, dtype=np.float32) if isinstance(X, np.ndarray) else X  # else frames, one array per wave
        if len(X) != len(waves):
            raise ValueError(f"extractor returned {len(X)} results for {len(waves)} waves")
    except Exception as err:  # noqa: BLE001 - one broken clip must not stop thousands
        if len(waves) == 1:
            return [f"feature extraction failed: {reason(err)}"]
        X = None
    if X is None:  # retried outside the handler, whose traceback still holds the batch's (GPU) memory
        return [r for w in waves for r in embed_batch(extractor, [w])]
    return [x if np.isfinite(x).all() else "features hold NaN or infinite values" for x in X]


def reason(err: Exception) -> str:
    """``Type: first line of the message`` (at most 200 characters of it)."""
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{type(err).__name__}: {text}"


def blocks(path: str | Path, sample_rate: int, seconds: float = 30.0) -> Iterator[np.ndarray]:
    """The samples ``ser.corpora.audio.load`` gives (mono float32 at ``sample_rate``), ``seconds`` of the
    file at a time: channels averaged per block, resampled by one soxr stream (the same samples as
    resampling the whole)."""
    import soundfile as sf
    import soxr

    from ser.corpora.audio import to_mono

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ") if sr != sample_rate else None
        for block in f.blocks(max(1, int(seconds * sr)), dtype="float32", always_2d=True):
            mono = to_mono(block, sr, sr)
            yield stream.resample_chunk(mono) if stream else mono
        if stream:
            yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def read_ahead(jobs: Iterable[T], read: Callable[[T], R], workers: int = 2,
               ahead: int = 16) -> Iterator[tuple[T, R | Exception]]:
    """``(job, read(job))`` in job order, with at most ``ahead`` reads running or waiting to be consumed.

    A read that raises yields the exception instead of a wave.
    """
    jobs = iter(jobs)
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="read")
    pending: deque = deque((job, pool.submit(read, job)) for job in itertools.islice(jobs, ahead))
    try:
        while pending:
            job, future = pending.popleft()
            for nxt in itertools.islice(jobs, 1):
                pending.append((nxt, pool.submit(read, nxt)))
            try:
                yield job, future.result()
            except Exception as err:  # noqa: BLE001 - reported per clip by the caller
                yield job, err
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def length_batches(items: Iterable[Loaded], max_samples: int, max_padding: float = 0.05,
                   window: int | None = None) -> Iterator[list[Loaded]]:
    """Batches of similar-length clips: at most ``max_samples`` samples each, padding included, and
    at most ``max_padding`` of them padding (a clip that would add more starts the next batch).

    ``items`` should arrive roughly sorted by length; a window of ``window`` samples of loaded audio
    (default 4 batches) is kept in a heap, and each batch is cut from its shortest clips.
    """
    window = window or 4 * max_samples
    heap: list[tuple[int, int, Any, np.ndarray]] = []
    held = 0
    for n, (job, wave) in enumerate(items):
        heapq.heappush(heap, (len(wave), n, job, wave))
        held += len(wave)
        while held >= window:
            batch = _cut(heap, max_samples, max_padding)
            held -= sum(len(w) for _, w in batch)
            yield batch
    while heap:
        yield _cut(heap, max_samples, max_padding)


def _cut(heap: list, max_samples: int, max_padding: float) -> list[Loaded]:
    """The shortest clips of the heap that fit in one batch (each new clip is the longest so far)."""
    batch, real = [], 0
    while heap:
        longest = heap[0][0]
        size = (len(batch) + 1) * longest
        if batch and (size > max_samples or size - real - longest > max_padding * size):
            break
        _, _, job, wave = heapq.heappop(heap)
        batch.append((job, wave))
        real += longest
    return batch



def padding(lengths: list[int]) -> tuple[int, int]:
    """(padded samples, total samples) of a batch of waves of these lengths padded to the longest."""
    return max(lengths) * len(lengths) - sum(lengths), max(lengths) * len(lengths)
