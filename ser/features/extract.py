"""Embed every clip of the manifest (and its augmented copies) through the per-clip cache.

Only vectors missing from the cache are computed: clips are streamed in order of length into
batches capped by ``batch_seconds`` of audio, and each vector is written to the cache as soon as
its batch is done, so a run that is killed resumes where it stopped. The
result is then assembled from the cache in manifest order: every original clip (aug 0), then
copy 1 of every clip, and so on. A clip that cannot be read or embedded is reported and left out
(with its copies); it is never cached, so the next run tries it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ser.config import AugmentParams, Params
from ser.corpora.audio import load
from ser.embeddings import FrameSet, write_frames
from ser.errors import FeatureError
from ser.features import Extractor, preprocessor
from ser.features.augment import Augmenter
from ser.features.cache import EmbeddingCache
from ser.features.stream import Job, embed_stream, padding, reason

log = logging.getLogger(__name__)


@dataclass
class Extraction:
    """X (vectors, or a FrameSet of frame sequences) and its meta (clip_id, label, speaker, aug), what was
    left out and why, and run statistics."""

    X: np.ndarray | FrameSet
    meta: pd.DataFrame
    failed: pd.DataFrame  # clip_id, path, aug, reason: one row per vector left out
    stats: dict = field(default_factory=dict)

    @property
    def failed_clips(self) -> pd.DataFrame:
        """Clips left out entirely (their original could not be embedded)."""
        return self.failed[self.failed["aug"] == 0].reset_index(drop=True)


def extract(manifest: pd.DataFrame, extractor: Extractor, cache_root: str | Path = "embeddings/cache",
            augment: AugmentParams | None = None, seed: int = 0, batch_seconds: float = 30.0,
            workers: int = 2, max_failed_fraction: float = 1.0,
            frames_path: str | Path = "embeddings/frames.npy") -> Extraction:
    """Embed ``manifest`` (clip_id, path, label, speaker, sha1[, duration]) plus ``augment.n_augmentations``
    copies of each clip; vectors come from, and go to, the cache under ``cache_root``. Frame sequences
    (``features.pooling: none``) are assembled into ``frames_path`` (:mod:`ser.features.frames`).

    Raises FeatureError as soon as more than ``max_failed_fraction`` of the clips have failed (the
    original or a copy): that many failures point at the model or the driver, not at a few broken
    clips. What finished stays cached, so the run resumes once the cause is fixed."""
    copies = augment.n_augmentations if augment else 0
    augmenter = Augmenter(augment, seed, extractor.sample_rate) if copies else None
    cache = EmbeddingCache(cache_root, extractor.identity(), augmenter.settings() if augmenter else None)
    seconds = manifest["duration"] if "duration" in manifest else pd.Series(0.0, index=manifest.index)
    todo = [Job(r.clip_id, r.path, r.sha1, aug, s) for aug in range(copies + 1)
            for r, s in zip(manifest.itertuples(), seconds) if not cache.has(r.sha1, aug, r.clip_id)]
    total = len(manifest) * (copies + 1)
    log.info("%s: %d of %d vectors (%d clips, each with %d augmented copies) cached in %s; computing %d",
             extractor.identity()["extractor"], total - len(todo), total, len(manifest), copies, cache.dir, len(todo))
    failures, stats = _compute(todo, extractor, cache, augmenter, batch_seconds, workers,
                               FailureBudget(int(max_failed_fraction * len(manifest)), len(manifest)))
    frames = extractor.identity().get("pooling") == "none"
    X, meta, failed = _assemble(manifest, cache, copies, failures, frames_path if frames else None)
    stats.update(cached=total - len(todo), cache_dir=str(cache.dir))
    log.info("%d rows of shape %s (%d clips, %d copies each); %d clips and %d copies left out", len(X),
             X.shape[1:], int((meta["aug"] == 0).sum()), copies,
             int((failed["aug"] == 0).sum()), int((failed["aug"] > 0).sum()))
    return Extraction(X, meta, failed, stats)


def feature_params(params: Params) -> dict:
    """The sections of ``params`` that rebuild the extractor and its input checks, and the augmentation
    (features.json and the model card keep them, so predict computes what training did, whatever
    params.yaml says now)."""
    return {"features": params.features.model_dump(mode="json"),
            "data": params.data.model_dump(mode="json", include={"sample_rate", "min_duration", "silence_dbfs"}),
            "preprocess": params.preprocess.model_dump(mode="json"),
            "augment": params.augment.model_dump(mode="json"), "seed": params.seed}  # for predict --tta


@dataclass
class FailureBudget:
    """How many of ``total`` clips may fail (original or any copy) before the run stops
    (features.max_failed_fraction)."""

    allowed: int
    total: int
    rerun: str = "finished vectors are cached"  # what a re-run after the fix keeps

    def check(self, failures: dict[tuple[str, int], str]) -> None:
        clips = {clip for clip, _ in failures}
        if len(clips) <= self.allowed:
            return
        first = "; ".join(f"{clip}{f' copy {aug}' if aug else ''}: {why}"
                          for (clip, aug), why in list(failures.items())[:3])
        raise FeatureError(f"{len(clips)} of {self.total} clips failed, more than features.max_failed_fraction "
                           f"allows ({self.allowed}): the model, the device or the audio reader is broken rather "
                           f"than a few clips. First reasons: {first}. Fix the cause and re-run: {self.rerun} "
                           "(or raise features.max_failed_fraction)")


def _compute(todo: list[Job], extractor: Extractor, cache: EmbeddingCache, augmenter: Augmenter | None,
             batch_seconds: float, workers: int, budget: FailureBudget) -> tuple[dict[tuple[str, int], str], dict]:
    """Embed ``todo`` into the cache; return {(clip_id, aug): reason} for what failed, and statistics."""
    sr = extractor.sample_rate
    failures: dict[tuple[str, int], str] = {}
    stats = {"computed": 0, "audio_seconds": 0.0, "padded_seconds": 0.0, "padded_fraction": 0.0, "seconds": 0.0}
    if not todo:
        return failures, stats

    clean = cleaner(extractor, cache.dir.parent)

    def read(job: Job) -> np.ndarray:
        wave = clean(job) if clean else load(job.path, sr)
        return augmenter(wave, job.clip_id, job.aug) if job.aug else wave

    def waves(job: Job, wave: np.ndarray | Exception):
        if isinstance(wave, Exception):
            failures[job.clip_id, job.aug] = reason(wave)
            bar.update(1)
        else:
            yield job, wave

    padded = processed = 0
    start = time.perf_counter()
    with tqdm(total=len(todo), desc="embedding", unit="clip", mininterval=2.0) as bar:
        for batch in embed_stream(sorted(todo, key=lambda j: j.seconds), read, waves, extractor, batch_seconds,
                                  workers):
            for job, result in zip(batch.keys, batch.results):
                if isinstance(result, str):
                    failures[job.clip_id, job.aug] = result
                else:
                    cache.put(result, job.sha1, job.aug, job.clip_id)
                    stats["computed"] += 1
            budget.check(failures)
            pad, size = padding(batch.lengths)
            padded, processed = padded + pad, processed + size
            stats["audio_seconds"] += (size - pad) / sr
            bar.update(len(batch.keys))
    stats["seconds"] = round(time.perf_counter() - start, 2)
    stats["padded_fraction"] = round(padded / processed, 4) if processed else 0.0
    stats["audio_seconds"] = round(stats["audio_seconds"], 2)
    stats["padded_seconds"] = round(padded / sr, 2)
    log.info("embedded %d vectors (%.0f s of audio) in %.0f s: %.2f audio-s/s, %.1f%% padding", stats["computed"],
             stats["audio_seconds"], stats["seconds"], stats["audio_seconds"] / max(stats["seconds"], 1e-9),
             100 * stats["padded_fraction"])
    return failures, stats


def cleaner(extractor: Extractor, cache_root: Path) -> Callable[[Job], np.ndarray] | None:
    """``clean(job)``: the clip read and preprocessed (``preprocess``), or None when there is no chain.

    With a denoiser the cleaned audio is cached (float32, ``<cache_root>/audio-<hash>/``): denoising
    costs about as much as the encoder (benchmarks/bench_preprocess.py), and augmented copies and other
    extractors start from the same cleaned clip. VAD and level alone recompute (200x real time).
    """
    chain = preprocessor(extractor)
    if chain is None:
        return None
    sr, identity = extractor.sample_rate, chain.identity()
    store = EmbeddingCache(cache_root, {"extractor": "audio", **identity}) if identity.get("denoise") else None

    def clean(job: Job) -> np.ndarray:
        wave = store.get(job.sha1) if store else None
        if wave is None:
            wave = chain(load(job.path, sr))
            if store:
                store.put(wave, job.sha1)
        return wave

    return clean


def _assemble(manifest: pd.DataFrame, cache: EmbeddingCache, copies: int, failures: dict[tuple[str, int], str],
              frames_path: str | Path | None = None) -> tuple[np.ndarray | FrameSet, pd.DataFrame, pd.DataFrame]:
    """Rows in manifest order, aug 0 first; copies of a clip whose original is missing are left out too.

    Vectors are filled into one array in place (never a list of vectors plus a stacked copy); frames
    are streamed from the cache into ``frames_path`` and come back as a FrameSet read from it.
    """
    frames = frames_path is not None
    found, rows, failed, kept = [], [], [], set()  # found: (cache key, frames) of each row
    X, shape, dtype = np.zeros((0, 0), np.float32), None, np.float16  # shape: of every vector, or of every frame
    for aug in range(copies + 1):
        for r in manifest.itertuples():
            if aug and r.clip_id not in kept:
                continue
            v = cache.get(r.sha1, aug, r.clip_id, mmap=frames)  # frames: only the header is read here
            if v is None:
                failed.append((r.clip_id, r.path, aug, failures.get((r.clip_id, aug), "missing from the cache")))
                continue
            if shape is None:
                shape, dtype = (v.shape[1:] if frames else v.shape), v.dtype
                if not frames:
                    X = np.empty((len(manifest) * (copies + 1), *shape), np.float32)
            if (v.shape[1:] if frames else v.shape) != shape:
                raise FeatureError(f"cached results of one extractor differ in shape ({shape} and {v.shape}): "
                                   f"delete {cache.dir} and extract again")
            if not frames:
                X[len(rows)] = v
            found.append(((r.sha1, aug, r.clip_id), len(v)))
            rows.append((r.clip_id, r.label, r.speaker, aug))
            if aug == 0:
                kept.add(r.clip_id)
            del v  # a mapped file holds a file descriptor
    for clip_id, path, aug, why in failed:
        log.warning("left out %s%s (%s): %s", clip_id, f" copy {aug}" if aug else "", path, why)
    meta = pd.DataFrame(rows, columns=["clip_id", "label", "speaker", "aug"])
    failed = pd.DataFrame(failed, columns=["clip_id", "path", "aug", "reason"])
    if not frames:
        return X[: len(rows)], meta, failed
    lengths = np.array([n for _, n in found], np.int64)
    write_frames(frames_path, (cache.get(*key) for key, _ in found), int(lengths.sum()), shape or (0, 0), dtype)
    return FrameSet.open(frames_path, np.concatenate([[0], np.cumsum(lengths)])), meta, failed
